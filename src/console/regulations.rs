//! Regulations page: GDPR / CCPA requests (SPEC §7). Lists requests with their status and
//! results, files new ones, and shows the suppression list with a way to lift a suppression.
//!
//! Deletion cannot be undone, so a deleting request goes through a confirmation step: the page
//! summarises what will be deleted for whom and asks for the word "delete" before it calls the
//! API. This works without JavaScript (it is a second form), and `console.js` keeps the button
//! disabled until the word is typed.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ConsoleUser;
use super::page::{Shell, back, render};
use super::{body, failed};
use crate::admin::ApiJson;
use crate::admin::regulations::{self as api, RegulationView, SuppressionView};
use crate::app::App;
use crate::store::RegulationType;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/regulations", get(page).post(create))
}

const REGULATIONS: &str = "/api/v1/regulations";
const SUPPRESSIONS: &str = "/api/v1/suppressions";
/// The word typed to confirm a deletion.
const CONFIRM_WORD: &str = "delete";

/// The types a request may have, in the order offered: `(type, label, what it does)`.
pub const TYPES: &[(RegulationType, &str, &str)] = &[
    (
        RegulationType::SuppressOnly,
        "Suppress: stop collecting",
        "Sluice drops this person's future events at the API, including those from devices linked to them. Nothing is deleted; you can lift it later (Unsuppress).",
    ),
    (
        RegulationType::Unsuppress,
        "Unsuppress: collect again",
        "Lifts a suppression: this person's events are accepted again from now on.",
    ),
    (
        RegulationType::DeleteInternal,
        "Delete from Sluice",
        "Deletes the person's profile, consent ledger, events not yet delivered and dead letters in Sluice. New events are still collected.",
    ),
    (
        RegulationType::SuppressWithDeleteInternal,
        "Suppress and delete from Sluice",
        "Stops collecting and deletes everything Sluice holds about the person (profile, consent ledger, undelivered events, dead letters).",
    ),
    (
        RegulationType::DeleteOnly,
        "Delete from Sluice and destinations",
        "Deletes what Sluice holds, and asks every destination that supports deletion (for example file destinations) to remove the rows Sluice wrote there.",
    ),
    (
        RegulationType::SuppressWithDelete,
        "Suppress, and delete from Sluice and destinations",
        "Stops collecting, deletes what Sluice holds, and removes the rows Sluice wrote to destinations that support deletion.",
    ),
];

pub fn type_label(t: RegulationType) -> &'static str {
    TYPES
        .iter()
        .find(|(k, _, _)| *k == t)
        .map_or("Request", |(_, label, _)| label)
}

#[derive(Deserialize)]
pub struct Flash {
    ok: Option<String>,
    error: Option<String>,
}

/// A regulation as listed.
struct Row {
    r: RegulationView,
    label: &'static str,
    /// `(pill class, text)`.
    status: (&'static str, &'static str),
    /// Readable results: `(what, how many or text)`.
    results: Vec<(String, String)>,
    /// Per destination: `(name, status, detail)`.
    destinations: Vec<(String, String, String)>,
}

#[derive(Default)]
struct FieldErrors {
    regulation_type: Option<String>,
    subject_ids: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.regulation_type.is_some() || self.subject_ids.is_some() || self.form.is_some()
    }
}

/// The confirmation step of a deleting request.
struct Confirm {
    regulation_type: &'static str,
    label: &'static str,
    description: &'static str,
    ids: Vec<String>,
    /// The word was typed wrong.
    error: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "console/regulations.html")]
struct Page {
    shell: Shell,
    types: &'static [(RegulationType, &'static str, &'static str)],
    rows: Vec<Row>,
    suppressions: Vec<SuppressionView>,
    may_read: Result<(), &'static str>,
    may_create: Result<(), &'static str>,
    // The form, as typed.
    regulation_type: String,
    subject_ids: String,
    errors: FieldErrors,
    confirm: Option<Confirm>,
    confirm_word: &'static str,
}

impl Page {
    fn is_type(&self, t: &RegulationType) -> bool {
        self.regulation_type == t.as_str()
    }
}

fn status(s: &str) -> (&'static str, &'static str) {
    match s {
        "INITIALIZED" => ("off", "Waiting to start"),
        "RUNNING" => ("warn", "Running"),
        "FINISHED" => ("on", "Finished"),
        "FAILED" => ("bad", "Failed"),
        "PARTIAL_SUCCESS" => ("warn", "Partly done"),
        _ => ("off", "Unknown"),
    }
}

fn result_label(key: &str) -> String {
    match key {
        "unsuppressed" => "Suppressions lifted".into(),
        "suppressedUserIds" => "User ids suppressed".into(),
        "suppressedAnonymousIds" => "Linked device ids suppressed".into(),
        "eventsDeleted" => "Undelivered events deleted".into(),
        "deadLettersDeleted" => "Dead letters deleted".into(),
        "profilesDeleted" => "Profiles deleted".into(),
        "ledgerEntriesDeleted" => "Consent ledger entries deleted".into(),
        "error" => "Error".into(),
        other => other.to_owned(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => super::overview::thousands(n.as_i64().unwrap_or(0)),
        other => other.to_string(),
    }
}

fn row(r: RegulationView, destinations: &HashMap<String, String>) -> Row {
    let mut results = Vec::new();
    let mut per_destination = Vec::new();
    if let Value::Object(map) = &r.details {
        for (key, value) in map {
            if key == "destinations" {
                for d in value.as_array().into_iter().flatten() {
                    let id = d["destinationId"].as_str().unwrap_or_default();
                    let name = destinations
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| format!("{id} (deleted)"));
                    let state = match d["status"].as_str().unwrap_or_default() {
                        "FINISHED" => "Deleted",
                        "NOT_SUPPORTED" => "Not supported by this destination type",
                        "FAILED" => "Failed",
                        _ => "Unknown",
                    };
                    let detail = match (&d["removed"], &d["error"]) {
                        (removed, _) if !removed.is_null() => format!("{} removed", text(removed)),
                        (_, error) if !error.is_null() => text(error),
                        _ => String::new(),
                    };
                    per_destination.push((name, state.to_owned(), detail));
                }
            } else {
                results.push((result_label(key), text(value)));
            }
        }
    }
    Row {
        label: type_label(r.regulation_type),
        status: status(&r.status),
        results,
        destinations: per_destination,
        r,
    }
}

async fn list_page(app: &Arc<App>, user: &ConsoleUser, shell: Shell) -> Page {
    let may_read = user
        .may(Method::GET, REGULATIONS)
        .and(user.may(Method::GET, SUPPRESSIONS));
    let (mut rows, mut suppressions) = (Vec::new(), Vec::new());
    if may_read.is_ok() {
        let names: HashMap<String, String> = app
            .store
            .destinations()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect();
        if let Ok(Json(list)) = api::list(State(Arc::clone(app))).await {
            rows = list.into_iter().map(|r| row(r, &names)).collect();
        }
        if let Ok(Json(list)) = api::suppressions(State(Arc::clone(app))).await {
            suppressions = list;
        }
    }
    Page {
        shell,
        types: TYPES,
        rows,
        suppressions,
        may_read,
        may_create: user.may(Method::POST, REGULATIONS),
        regulation_type: RegulationType::SuppressOnly.as_str().to_owned(),
        subject_ids: String::new(),
        errors: FieldErrors::default(),
        confirm: None,
        confirm_word: CONFIRM_WORD,
    }
}

async fn page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(flash): Query<Flash>,
) -> Response {
    let shell = Shell::new(&user, "regulations", "Regulations").with_flash(flash.ok, flash.error);
    render(&list_page(&app, &user, shell).await)
}

/// The request form: `subject_ids` may repeat (one hidden field per id on the confirmation
/// step) and each value may hold several ids, one per line.
struct RegulationForm {
    csrf: String,
    regulation_type: String,
    subject_ids: Vec<String>,
    /// The textarea as typed, to show it again.
    typed: String,
    confirm: Option<String>,
}

fn parse_form(raw: &[u8]) -> RegulationForm {
    let mut form = RegulationForm {
        csrf: String::new(),
        regulation_type: String::new(),
        subject_ids: Vec::new(),
        typed: String::new(),
        confirm: None,
    };
    for (key, value) in form_urlencoded::parse(raw) {
        match key.as_ref() {
            "_csrf" => form.csrf = value.into_owned(),
            "regulation_type" => form.regulation_type = value.trim().to_owned(),
            "subject_ids" => {
                if !form.typed.is_empty() {
                    form.typed.push('\n');
                }
                form.typed.push_str(&value);
                for id in value.lines().map(str::trim).filter(|s| !s.is_empty()) {
                    if !form.subject_ids.iter().any(|s| s == id) {
                        form.subject_ids.push(id.to_owned());
                    }
                }
            }
            "confirm" => form.confirm = Some(value.into_owned()),
            _ => {}
        }
    }
    form
}

async fn form_error(
    app: &Arc<App>,
    user: &ConsoleUser,
    form: RegulationForm,
    errors: FieldErrors,
) -> Response {
    let mut page = list_page(app, user, Shell::new(user, "regulations", "Regulations")).await;
    page.regulation_type = form.regulation_type;
    page.subject_ids = form.typed;
    page.errors = errors;
    let mut response = render(&page);
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

async fn create(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    raw: axum::body::Bytes,
) -> Response {
    let form = parse_form(&raw);
    let caller = match user.guard(&form.csrf, Method::POST, REGULATIONS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let mut errors = FieldErrors::default();
    let kind = RegulationType::from_str(&form.regulation_type).ok();
    if kind.is_none() {
        errors.regulation_type = Some("Choose what to do.".into());
    }
    if form.subject_ids.is_empty() {
        errors.subject_ids = Some("Enter at least one user id, one per line.".into());
    }
    let Some(kind) = kind.filter(|_| !errors.any()) else {
        return form_error(&app, &user, form, errors).await;
    };

    // Deletion cannot be undone: confirm first.
    if kind.deletes_internally()
        && form.confirm.as_deref().map(|c| c.trim().to_lowercase()) != Some(CONFIRM_WORD.into())
    {
        let (_, label, description) = TYPES
            .iter()
            .find(|(k, _, _)| *k == kind)
            .copied()
            .unwrap_or((kind, "", ""));
        let mut page = list_page(
            &app,
            &user,
            Shell::new(&user, "regulations", "Confirm deletion"),
        )
        .await;
        let wrong = form.confirm.is_some();
        page.confirm = Some(Confirm {
            regulation_type: kind.as_str(),
            label,
            description,
            ids: form.subject_ids,
            error: wrong.then(|| format!("Type the word {CONFIRM_WORD} to confirm, or cancel.")),
        });
        page.regulation_type = form.regulation_type;
        page.subject_ids = form.typed;
        let mut response = render(&page);
        if wrong {
            *response.status_mut() = StatusCode::BAD_REQUEST;
        }
        return response;
    }

    let request = match body(
        json!({"regulationType": kind.as_str(), "subjectType": "USER_ID", "subjectIds": form.subject_ids}),
    ) {
        Ok(b) => b,
        Err(e) => return failed("/regulations", &e),
    };
    let count = form.subject_ids.len();
    match api::create(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok(_) => back(
            "/regulations",
            "ok",
            &format!(
                "Request filed: {} for {count} {}. It runs in the background; its status is in the list below (reload to update).",
                type_label(kind),
                if count == 1 { "person" } else { "people" },
            ),
        ),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            form_error(
                &app,
                &user,
                form,
                FieldErrors {
                    subject_ids: Some(e.message),
                    ..FieldErrors::default()
                },
            )
            .await
        }
        Err(e) => failed("/regulations", &e),
    }
}
