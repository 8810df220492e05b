//! Reverse ETL: warehouse connections (with "Test connection"), models with a preview of their
//! rows, the consent mapping (which column holds each category's consent, owners only), the
//! destination mappings, "Sync now", the schedule, and the run history.
//!
//! Every action calls the admin handler of its API route (`crate::admin::retl`) after the
//! session, CSRF and role checks of [`ConsoleUser::guard`], so validation, audit and refusals
//! are the API's. Connection passwords are never shown: the API redacts them, and a form sent
//! back with an error shows its URL redacted as well.
//!
//! A running sync's row in the run history is refreshed every second by
//! `assets/console/retl.js` from `/retl/runs/{id}/progress` (the run's JSON, as
//! `GET /api/v1/retl/runs/{id}` returns it); without JavaScript, reloading the page shows the
//! current numbers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ConsoleUser;
use super::page::{ConfirmByName, CsrfOnly, Shell, back, confirmed, render, sentence};
use super::{body, failed};
use crate::admin::ApiJson;
use crate::admin::retl::{self as api, ConnectionView, ModelView, PreviewView, RunView, TestView};
use crate::app::App;
use crate::error::ApiError;
use crate::retl::warehouse::{self, Kind};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/retl", get(list))
        .route("/retl/connections", post(create_connection))
        .route(
            "/retl/connections/{id}",
            get(connection_detail).post(save_connection),
        )
        .route("/retl/connections/{id}/test", post(test_connection))
        .route("/retl/connections/{id}/delete", post(delete_connection))
        .route("/retl/models", post(create_model))
        .route("/retl/models/{id}", get(model_detail).post(save_model))
        .route("/retl/models/{id}/preview", post(preview))
        .route("/retl/models/{id}/consent-mapping", post(consent_mapping))
        .route("/retl/models/{id}/mappings", post(create_mapping))
        .route(
            "/retl/models/{id}/mappings/{mapping_id}/delete",
            post(delete_mapping),
        )
        .route("/retl/models/{id}/sync", post(sync))
        .route("/retl/models/{id}/delete", post(delete_model))
        .route("/retl/runs/{id}/progress", get(run_progress))
}

const CONNECTIONS: &str = "/api/v1/retl/connections";
const CONNECTION: &str = "/api/v1/retl/connections/{id}";
const CONNECTION_TEST: &str = "/api/v1/retl/connections/{id}/test";
const MODELS: &str = "/api/v1/retl/models";
const MODEL: &str = "/api/v1/retl/models/{id}";
const PREVIEW: &str = "/api/v1/retl/models/{id}/preview";
const CONSENT_MAPPING: &str = "/api/v1/retl/models/{id}/consent-mapping";
const MAPPINGS: &str = "/api/v1/retl/models/{id}/mappings";
const MAPPING: &str = "/api/v1/retl/models/{id}/mappings/{mapping_id}";
const SYNC: &str = "/api/v1/retl/models/{id}/sync";
const RUN: &str = "/api/v1/retl/runs/{id}";

/// Shown next to the consent mapping editor to members and viewers. (The API's own reason
/// speaks of consent settings in general.)
const OWNER_CONSENT_MAPPING: &str = "Only owners can change consent mappings";

#[derive(Deserialize)]
pub struct Flash {
    ok: Option<String>,
    error: Option<String>,
}

fn no_flash() -> Flash {
    Flash {
        ok: None,
        error: None,
    }
}

/// An API message next to a form field: without the API's `fieldName: ` prefix, as a sentence.
fn field_message(message: &str, field: &str) -> String {
    let text = message
        .strip_prefix(field)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(message);
    let mut text = sentence(text);
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

// ---- Connections ------------------------------------------------------------------------------

/// The fields of the connection forms, as typed.
#[derive(Deserialize, Default)]
struct ConnectionForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    url: String,
    /// Seconds; empty for the default (create) or unchanged (edit).
    #[serde(default)]
    timeout: String,
}

impl ConnectionForm {
    fn of(c: &ConnectionView) -> ConnectionForm {
        ConnectionForm {
            csrf: String::new(),
            name: c.name.clone(),
            kind: c.kind.as_str().to_owned(),
            url: c.url.clone(),
            timeout: c.statement_timeout_seconds.to_string(),
        }
    }

    /// The form as it is shown again: the URL with its password redacted.
    fn shown(mut self) -> ConnectionForm {
        self.url = warehouse::redact_url(&self.url);
        self.csrf.clear();
        self
    }

    fn timeout_value(&self, errors: &mut ConnectionErrors) -> Value {
        match self.timeout.trim() {
            "" => Value::Null,
            text => match text.parse::<u32>() {
                Ok(n) => json!(n),
                Err(_) => {
                    errors.timeout = Some("Enter a whole number of seconds, e.g. 300.".into());
                    Value::Null
                }
            },
        }
    }
}

/// Errors of a connection form, next to their fields.
#[derive(Default)]
struct ConnectionErrors {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    timeout: Option<String>,
    form: Option<String>,
}

impl ConnectionErrors {
    fn any(&self) -> bool {
        self.name.is_some()
            || self.kind.is_some()
            || self.url.is_some()
            || self.timeout.is_some()
            || self.form.is_some()
    }

    fn from_api(e: &ApiError) -> ConnectionErrors {
        let m = &e.message;
        let mut errors = ConnectionErrors::default();
        if m.contains("statementTimeoutSeconds") {
            errors.timeout = Some(field_message(m, "statementTimeoutSeconds"));
        } else if m.contains("url") || m.contains("URL") || e.code == "path_not_allowed" {
            errors.url = Some(field_message(m, "url"));
        } else if m.contains("kind") {
            errors.kind = Some("Choose one of the listed kinds.".into());
        } else if m.contains("name") {
            errors.name = Some(field_message(m, "name"));
        } else {
            errors.form = Some(field_message(m, ""));
        }
        errors
    }
}

/// A model in the lists, with the name of its connection.
struct ModelRow {
    model: ModelView,
    connection: String,
}

/// The result of "Test connection", shown in the connection's row.
struct Tested {
    connection_id: String,
    result: TestView,
}

impl Tested {
    fn text(&self) -> String {
        let r = &self.result;
        if r.ok {
            // "connected to PostgreSQL 16.2 (Debian …) on x86_64…": the product and version.
            let message = r.message.split(" (").next().unwrap_or(&r.message);
            let message = message.split(" on ").next().unwrap_or(message);
            format!("Connection works: {message} ({} ms).", r.latency_ms)
        } else {
            let mut text = format!("Connection failed: {}", r.message);
            if !text.ends_with('.') {
                text.push('.');
            }
            text
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/retl.html")]
struct ListPage {
    shell: Shell,
    connections: Vec<ConnectionView>,
    models: Vec<ModelRow>,
    tested: Option<Tested>,
    connection_form: ConnectionForm,
    connection_errors: ConnectionErrors,
    model_form: ModelForm,
    model_errors: ModelErrors,
    may_create_connection: Result<(), &'static str>,
    may_test: Result<(), &'static str>,
    may_create_model: Result<(), &'static str>,
}

impl ListPage {
    fn locked(&self) -> bool {
        self.may_create_connection.is_err()
    }

    /// Whether the create-model form's fields are read-only.
    fn fields_locked(&self) -> bool {
        self.may_create_model.is_err() || self.connections.is_empty()
    }

    fn units(&self) -> &'static [(&'static str, &'static str, u32)] {
        UNITS
    }

    fn kind(&self, kind: &Kind) -> &'static str {
        kind_label(kind)
    }

    fn schedule(&self, every_seconds: &u32) -> String {
        schedule_text(Some(*every_seconds))
    }

    fn pill(&self, status: &str) -> (&'static str, &'static str) {
        status_pill(status)
    }

    fn models_of(&self, connection_id: &str) -> usize {
        self.models
            .iter()
            .filter(|m| m.model.connection_id == connection_id)
            .count()
    }

    fn tested_for(&self, connection_id: &str) -> Option<&Tested> {
        self.tested
            .as_ref()
            .filter(|t| t.connection_id == connection_id)
    }
}

fn kind_label(kind: &Kind) -> &'static str {
    match kind {
        Kind::Postgres => "PostgreSQL",
        Kind::Mysql => "MySQL or MariaDB",
        Kind::Sqlite => "SQLite",
    }
}

async fn connections(app: &Arc<App>) -> Vec<ConnectionView> {
    match api::list_connections(State(Arc::clone(app))).await {
        Ok(Json(c)) => c,
        Err(_) => Vec::new(),
    }
}

async fn model_rows(
    app: &Arc<App>,
    connections: &[ConnectionView],
) -> Result<Vec<ModelRow>, ApiError> {
    let Json(models) = api::list_models(State(Arc::clone(app))).await?;
    Ok(models
        .into_iter()
        .map(|model| ModelRow {
            connection: connections
                .iter()
                .find(|c| c.id == model.connection_id)
                .map_or_else(|| model.connection_id.clone(), |c| c.name.clone()),
            model,
        })
        .collect())
}

/// What the list page shows besides the lists.
#[derive(Default)]
struct ListDraft {
    tested: Option<Tested>,
    connection: Option<(ConnectionForm, ConnectionErrors)>,
    model: Option<(ModelForm, ModelErrors)>,
}

async fn list_page(app: &Arc<App>, user: &ConsoleUser, draft: ListDraft, flash: Flash) -> Response {
    let connections = connections(app).await;
    let models = match model_rows(app, &connections).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let (connection_form, connection_errors) = draft.connection.unwrap_or_else(|| {
        (
            ConnectionForm {
                kind: "postgres".into(),
                ..ConnectionForm::default()
            },
            ConnectionErrors::default(),
        )
    });
    let (model_form, model_errors) = draft.model.unwrap_or_else(|| {
        let form = ModelForm {
            schedule_unit: "hours".into(),
            ..ModelForm::default()
        };
        (form, ModelErrors::default())
    });
    let status = if connection_errors.any() || model_errors.any() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    with_status(
        render(&ListPage {
            shell: Shell::new(user, "retl", "Reverse ETL").with_flash(flash.ok, flash.error),
            connections,
            models,
            tested: draft.tested,
            connection_form,
            connection_errors,
            model_form,
            model_errors,
            may_create_connection: user.may(Method::POST, CONNECTIONS),
            may_test: user.may(Method::POST, CONNECTION_TEST),
            may_create_model: user.may(Method::POST, MODELS),
        }),
        status,
    )
}

async fn list(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(flash): Query<Flash>,
) -> Response {
    list_page(&app, &user, ListDraft::default(), flash).await
}

async fn create_connection(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Form(form): Form<ConnectionForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, CONNECTIONS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let mut errors = ConnectionErrors::default();
    let kind = Kind::parse(&form.kind);
    if kind.is_none() {
        errors.kind = Some("Choose one of the listed kinds.".into());
    }
    let timeout = form.timeout_value(&mut errors);
    let invalid = |app: Arc<App>, form: ConnectionForm, errors: ConnectionErrors| async move {
        let draft = ListDraft {
            connection: Some((form.shown(), errors)),
            ..ListDraft::default()
        };
        list_page(&app, &user, draft, no_flash()).await
    };
    if errors.any() {
        return invalid(app, form, errors).await;
    }
    let request = match body(json!({
        "name": form.name, "kind": form.kind, "url": form.url, "statementTimeoutSeconds": timeout,
    })) {
        Ok(b) => b,
        Err(e) => return invalid(app, form, ConnectionErrors::from_api(&e)).await,
    };
    match api::create_connection(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok((_, Json(created))) => back(
            "/retl",
            "ok",
            &format!(
                "Connection “{}” created. Test it, then create a model on it.",
                created.name
            ),
        ),
        Err(e) => invalid(app, form, ConnectionErrors::from_api(&e)).await,
    }
}

#[derive(askama::Template)]
#[template(path = "console/retl_connection.html")]
struct ConnectionPage {
    shell: Shell,
    connection: ConnectionView,
    models: Vec<ModelRow>,
    tested: Option<Tested>,
    form: ConnectionForm,
    errors: ConnectionErrors,
    may_change: Result<(), &'static str>,
    may_test: Result<(), &'static str>,
}

impl ConnectionPage {
    fn locked(&self) -> bool {
        self.may_change.is_err()
    }

    fn kind(&self, kind: &Kind) -> &'static str {
        kind_label(kind)
    }
}

async fn connection_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    connection: ConnectionView,
    tested: Option<Tested>,
    draft: Option<(ConnectionForm, ConnectionErrors)>,
    flash: Flash,
) -> Response {
    let all = connections(app).await;
    let models = match model_rows(app, &all).await {
        Ok(m) => m
            .into_iter()
            .filter(|m| m.model.connection_id == connection.id)
            .collect(),
        Err(e) => return e.into_response(),
    };
    let (form, errors) =
        draft.unwrap_or_else(|| (ConnectionForm::of(&connection), ConnectionErrors::default()));
    let status = if errors.any() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    with_status(
        render(&ConnectionPage {
            shell: Shell::new(user, "retl", format!("Connection “{}”", connection.name))
                .with_flash(flash.ok, flash.error),
            connection,
            models,
            tested,
            form,
            errors,
            may_change: user.may(Method::PATCH, CONNECTION),
            may_test: user.may(Method::POST, CONNECTION_TEST),
        }),
        status,
    )
}

async fn connection_detail(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    match api::get_connection(State(Arc::clone(&app)), Path(id)).await {
        Ok(Json(connection)) => connection_page(&app, &user, connection, None, None, flash).await,
        Err(e) => failed("/retl", &e),
    }
}

async fn save_connection(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ConnectionForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::PATCH, CONNECTION) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let connection = match api::get_connection(State(Arc::clone(&app)), Path(id.clone())).await {
        Ok(Json(c)) => c,
        Err(e) => return failed("/retl", &e),
    };
    let mut errors = ConnectionErrors::default();
    let timeout = form.timeout_value(&mut errors);
    let mut form = form;
    form.kind = connection.kind.as_str().to_owned();
    if errors.any() {
        return connection_page(
            &app,
            &user,
            connection,
            None,
            Some((form.shown(), errors)),
            no_flash(),
        )
        .await;
    }
    // Unchanged fields are left out, so that only what was edited is changed (and audited).
    let mut patch = serde_json::Map::new();
    if form.name != connection.name {
        patch.insert("name".into(), json!(form.name));
    }
    if form.url != connection.url {
        patch.insert("url".into(), json!(form.url));
    }
    if !timeout.is_null() && timeout != json!(connection.statement_timeout_seconds) {
        patch.insert("statementTimeoutSeconds".into(), timeout);
    }
    let here = format!("/retl/connections/{id}");
    if patch.is_empty() {
        return back(&here, "ok", "Nothing changed.");
    }
    let request = match body(Value::Object(patch)) {
        Ok(b) => b,
        Err(e) => {
            let errors = ConnectionErrors::from_api(&e);
            return connection_page(
                &app,
                &user,
                connection,
                None,
                Some((form.shown(), errors)),
                no_flash(),
            )
            .await;
        }
    };
    match api::patch_connection(State(Arc::clone(&app)), caller, Path(id), ApiJson(request)).await {
        Ok(Json(after)) => back(&here, "ok", &format!("Connection “{}” saved.", after.name)),
        Err(e) => {
            let errors = ConnectionErrors::from_api(&e);
            connection_page(
                &app,
                &user,
                connection,
                None,
                Some((form.shown(), errors)),
                no_flash(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    /// `detail` to answer with the connection's page; the list otherwise.
    #[serde(default)]
    from: String,
}

/// Test a connection and show the result in place: in its row of the list, or on its page.
async fn test_connection(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(refused) = user.guard(&form.csrf, Method::POST, CONNECTION_TEST) {
        return refused;
    }
    let result = match api::test_connection(State(Arc::clone(&app)), Path(id.clone())).await {
        Ok(Json(result)) => result,
        Err(e) => return failed("/retl", &e),
    };
    let tested = Tested {
        connection_id: id.clone(),
        result,
    };
    if form.from == "detail" {
        match api::get_connection(State(Arc::clone(&app)), Path(id)).await {
            Ok(Json(connection)) => {
                connection_page(&app, &user, connection, Some(tested), None, no_flash()).await
            }
            Err(e) => failed("/retl", &e),
        }
    } else {
        let draft = ListDraft {
            tested: Some(tested),
            ..ListDraft::default()
        };
        list_page(&app, &user, draft, no_flash()).await
    }
}

async fn delete_connection(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ConfirmByName>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, CONNECTION) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/retl/connections/{id}");
    match api::get_connection(State(Arc::clone(&app)), Path(id.clone())).await {
        Ok(Json(c)) => {
            if let Err(refused) = confirmed(&form.confirm_name, &c.name, &here, "connection") {
                return refused;
            }
        }
        Err(e) => return failed("/retl", &e),
    }
    match api::delete_connection(State(app), caller, Path(id)).await {
        Ok(_) => back(
            "/retl",
            "ok",
            &format!("Connection “{}” deleted.", form.confirm_name),
        ),
        Err(e) => failed(&here, &e),
    }
}

// ---- Models -----------------------------------------------------------------------------------

/// Schedule units offered in the forms: `(value, label, seconds)`.
const UNITS: &[(&str, &str, u32)] = &[
    ("seconds", "seconds", 1),
    ("minutes", "minutes", 60),
    ("hours", "hours", 3_600),
    ("days", "days", 86_400),
];

/// A schedule in the largest unit that divides it: 7200 s → `("2", "hours")`.
fn schedule_parts(every_seconds: Option<u32>) -> (String, String) {
    match every_seconds {
        None => (String::new(), "hours".into()),
        Some(secs) => {
            let (unit, size) = UNITS
                .iter()
                .rev()
                .find(|(_, _, size)| secs % size == 0)
                .map_or(("seconds", 1), |(u, _, size)| (*u, *size));
            ((secs / size).to_string(), unit.to_owned())
        }
    }
}

/// "Every 2 hours", "Every minute", "Manual".
fn schedule_text(every_seconds: Option<u32>) -> String {
    match every_seconds {
        None => "Manual".into(),
        Some(secs) => {
            let (n, unit) = schedule_parts(Some(secs));
            if n == "1" {
                format!("Every {}", unit.trim_end_matches('s'))
            } else {
                format!("Every {n} {unit}")
            }
        }
    }
}

/// The fields of the model forms, as typed.
#[derive(Deserialize, Default)]
struct ModelForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    connection_id: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    unique_id_column: String,
    /// Empty: the unique id column.
    #[serde(default)]
    user_id_column: String,
    /// Empty: manual syncs only.
    #[serde(default)]
    schedule_every: String,
    #[serde(default)]
    schedule_unit: String,
    /// Empty: no limit.
    #[serde(default)]
    row_limit: String,
}

impl ModelForm {
    fn of(m: &ModelView) -> ModelForm {
        let (every, unit) = schedule_parts(m.schedule.as_ref().map(|s| s.every_seconds));
        ModelForm {
            csrf: String::new(),
            name: m.name.clone(),
            connection_id: m.connection_id.clone(),
            query: m.query.clone(),
            unique_id_column: m.unique_id_column.clone(),
            user_id_column: m.user_id_column.clone().unwrap_or_default(),
            schedule_every: every,
            schedule_unit: unit,
            row_limit: m.row_limit.map(|l| l.to_string()).unwrap_or_default(),
        }
    }

    /// The schedule and row limit as API values; fields that are not numbers get an error.
    fn numbers(&self, errors: &mut ModelErrors) -> (Value, Value) {
        let schedule = match self.schedule_every.trim() {
            "" => Value::Null,
            text => {
                let size = UNITS
                    .iter()
                    .find(|(u, _, _)| *u == self.schedule_unit)
                    .map_or(1, |(_, _, s)| *s);
                match text.parse::<u32>().ok().and_then(|n| n.checked_mul(size)) {
                    Some(secs) => json!({"everySeconds": secs}),
                    None => {
                        errors.schedule = Some(
                            "Enter a whole number, or leave it empty to sync only when someone presses “Sync now”.".into(),
                        );
                        Value::Null
                    }
                }
            }
        };
        let limit = match self.row_limit.trim() {
            "" => Value::Null,
            text => match text.parse::<u64>() {
                Ok(n) => json!(n),
                Err(_) => {
                    errors.row_limit = Some(
                        "Enter a whole number of records, or leave it empty for no limit.".into(),
                    );
                    Value::Null
                }
            },
        };
        (schedule, limit)
    }

    fn user_id(&self) -> Value {
        match self.user_id_column.trim() {
            "" => Value::Null,
            c => json!(c),
        }
    }
}

/// Errors of a model form, next to their fields.
#[derive(Default)]
struct ModelErrors {
    name: Option<String>,
    connection: Option<String>,
    query: Option<String>,
    unique_id: Option<String>,
    user_id: Option<String>,
    schedule: Option<String>,
    row_limit: Option<String>,
    form: Option<String>,
}

impl ModelErrors {
    fn any(&self) -> bool {
        self.name.is_some()
            || self.connection.is_some()
            || self.query.is_some()
            || self.unique_id.is_some()
            || self.user_id.is_some()
            || self.schedule.is_some()
            || self.row_limit.is_some()
            || self.form.is_some()
    }

    fn from_api(e: &ApiError) -> ModelErrors {
        let m = &e.message;
        let mut errors = ModelErrors::default();
        if m.starts_with("uniqueIdColumn") {
            errors.unique_id = Some(field_message(m, "uniqueIdColumn"));
        } else if m.starts_with("userIdColumn") {
            errors.user_id = Some(field_message(m, "userIdColumn"));
        } else if m.starts_with("connectionId") {
            errors.connection = Some(field_message(m, "connectionId"));
        } else if m.contains("schedule") {
            errors.schedule = Some(field_message(m, "schedule.everySeconds"));
        } else if m.contains("rowLimit") {
            errors.row_limit = Some(field_message(m, "rowLimit"));
        } else if m.contains("model name") || m.contains("a model named") {
            errors.name = Some(field_message(m, "name"));
        } else if e.status == StatusCode::BAD_REQUEST {
            // The guard's and the warehouse's objections to the query itself.
            errors.query = Some(field_message(m, "query"));
        } else {
            errors.form = Some(field_message(m, ""));
        }
        errors
    }
}

async fn create_model(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Form(form): Form<ModelForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, MODELS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let invalid = |app: Arc<App>, mut form: ModelForm, errors: ModelErrors| async move {
        form.csrf.clear();
        let draft = ListDraft {
            model: Some((form, errors)),
            ..ListDraft::default()
        };
        list_page(&app, &user, draft, no_flash()).await
    };
    let mut errors = ModelErrors::default();
    let (schedule, limit) = form.numbers(&mut errors);
    if errors.any() {
        return invalid(app, form, errors).await;
    }
    let request = match body(json!({
        "name": form.name, "connectionId": form.connection_id, "query": form.query,
        "uniqueIdColumn": form.unique_id_column.trim(), "userIdColumn": form.user_id(),
        "schedule": schedule, "rowLimit": limit,
    })) {
        Ok(b) => b,
        Err(e) => return invalid(app, form, ModelErrors::from_api(&e)).await,
    };
    match api::create_model(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok((_, Json(created))) => back(
            &format!("/retl/models/{}", created.id),
            "ok",
            &format!(
                "Model “{}” created. Check its preview, map its consent columns and add a destination mapping.",
                created.name
            ),
        ),
        Err(e) => invalid(app, form, ModelErrors::from_api(&e)).await,
    }
}

/// A destination mapping as the page shows it.
struct MappingRow {
    id: String,
    /// "Destination Ads", "Event pipeline, as events of source Shop".
    target: String,
    operation: &'static str,
    event: Option<String>,
    on: String,
}

/// The fields of the new-mapping form.
#[derive(Deserialize, Default)]
struct MappingForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    /// `destination:<id>` or `source:<id>` (the event pipeline).
    #[serde(default)]
    target: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    on_added: Option<String>,
    #[serde(default)]
    on_updated: Option<String>,
    #[serde(default)]
    on_deleted: Option<String>,
}

impl MappingForm {
    fn fresh() -> MappingForm {
        MappingForm {
            operation: "identify".into(),
            on_added: Some("on".into()),
            on_updated: Some("on".into()),
            ..MappingForm::default()
        }
    }
}

/// A row of the consent mapping editor.
struct ConsentRow {
    column: String,
    type_name: String,
    /// The category chosen for it, or empty.
    category: String,
}

/// A choice in the consent mapping editor.
struct CategoryChoice {
    id: String,
    label: String,
}

/// A run as a row of the history.
struct RunRow {
    run: RunView,
}

impl RunRow {
    fn running(&self) -> bool {
        self.run.status == "running"
    }
}

/// `(pill class, label)` of a run status.
fn status_pill(status: &str) -> (&'static str, &'static str) {
    match status {
        "running" => ("warn", "Running"),
        "succeeded" => ("on", "Succeeded"),
        "partial" => ("warn", "Partly failed"),
        "failed" => ("bad", "Failed"),
        "interrupted" => ("off", "Interrupted"),
        _ => ("off", "Unknown"),
    }
}

/// A preview value as text: strings as they are, `NULL`, other JSON as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct ModelDraft {
    preview: Option<Result<PreviewView, String>>,
    settings: Option<(ModelForm, ModelErrors)>,
    consent: Option<(BTreeMap<String, String>, String)>,
    mapping: Option<(MappingForm, String)>,
}

#[derive(askama::Template)]
#[template(path = "console/retl_model.html")]
struct ModelPage {
    shell: Shell,
    model: ModelView,
    connection: Option<ConnectionView>,
    runs: Vec<RunRow>,
    preview: Option<Result<PreviewView, String>>,
    consent_rows: Vec<ConsentRow>,
    categories: Vec<CategoryChoice>,
    consent_error: Option<String>,
    mappings: Vec<MappingRow>,
    destinations: Vec<(String, String)>,
    sources: Vec<(String, String)>,
    mapping_form: MappingForm,
    mapping_error: Option<String>,
    form: ModelForm,
    errors: ModelErrors,
    may_change: Result<(), &'static str>,
    may_preview: Result<(), &'static str>,
    may_map_consent: Result<(), &'static str>,
    may_add_mapping: Result<(), &'static str>,
    may_sync: Result<(), &'static str>,
}

impl ModelPage {
    /// Whether the settings form's fields are read-only.
    fn fields_locked(&self) -> bool {
        self.may_change.is_err()
    }

    fn units(&self) -> &'static [(&'static str, &'static str, u32)] {
        UNITS
    }

    fn kind(&self, kind: &Kind) -> &'static str {
        kind_label(kind)
    }

    fn target_chosen(&self, kind: &str, id: &str) -> bool {
        self.mapping_form.target.split_once(':') == Some((kind, id))
    }

    fn known_category(&self, id: &str) -> bool {
        self.categories.iter().any(|c| c.id == id)
    }

    /// Whether "Sync now" is blocked only by the running sync (`retl.js` enables it when the
    /// run ends).
    fn unblocked_by_run_end(&self) -> bool {
        self.may_sync.is_ok() && self.running() && !self.model.mappings.is_empty()
    }

    fn consent_locked(&self) -> bool {
        self.may_map_consent.is_err()
    }

    fn mapping_locked(&self) -> bool {
        self.may_add_mapping.is_err()
    }

    fn running(&self) -> bool {
        self.model.running_run_id.is_some()
    }

    /// Why "Sync now" cannot be pressed now, if it cannot.
    fn sync_blocked(&self) -> Option<&'static str> {
        match self.may_sync {
            Err(reason) => Some(reason),
            Ok(()) if self.running() => {
                Some("A sync of this model is running; wait for it to finish")
            }
            Ok(()) if self.model.mappings.is_empty() => {
                Some("Add a destination mapping first: without one a sync would send nothing")
            }
            Ok(()) => None,
        }
    }

    fn schedule_text(&self) -> String {
        match &self.model.schedule {
            None => "Manual: syncs run when someone presses “Sync now”.".into(),
            Some(s) => format!("{}.", schedule_text(Some(s.every_seconds))),
        }
    }

    fn consent_mapped(&self) -> bool {
        !self.model.consent_mapping.columns.is_empty()
    }

    fn pill(&self, status: &str) -> (&'static str, &'static str) {
        status_pill(status)
    }

    fn cell(&self, v: &Value) -> String {
        cell(v)
    }
}

async fn model_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    model: ModelView,
    draft: ModelDraft,
    flash: Flash,
) -> Response {
    let connection = api::get_connection(State(Arc::clone(app)), Path(model.connection_id.clone()))
        .await
        .ok()
        .map(|Json(c)| c);
    let runs = match api::list_runs(State(Arc::clone(app)), Path(model.id.clone())).await {
        Ok(Json(runs)) => runs.into_iter().map(|run| RunRow { run }).collect(),
        Err(e) => return e.into_response(),
    };
    let snapshot = app.snapshot();
    let categories = snapshot
        .categories
        .iter()
        .map(|c| CategoryChoice {
            id: c.id.clone(),
            label: if c.enabled {
                format!("{} ({})", c.name, c.id)
            } else {
                format!("{} ({}, disabled)", c.name, c.id)
            },
        })
        .collect();
    let destinations: Vec<(String, String)> = snapshot
        .destinations
        .iter()
        .map(|d| (d.id.clone(), d.name.clone()))
        .collect();
    let sources: Vec<(String, String)> = app
        .store
        .sources()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let (chosen, consent_error) = match draft.consent {
        Some((chosen, error)) => (chosen, Some(error)),
        None => (model.consent_mapping.columns.clone(), None),
    };
    let consent_rows = model
        .columns
        .iter()
        .map(|c| ConsentRow {
            column: c.name.clone(),
            type_name: c.type_name.clone(),
            category: chosen.get(&c.name).cloned().unwrap_or_default(),
        })
        .collect();
    let mappings = model
        .mappings
        .iter()
        .map(|m| MappingRow {
            id: m.id.clone(),
            target: match (&m.destination_id, &m.source_id) {
                (Some(d), _) => format!(
                    "Destination “{}”",
                    destinations
                        .iter()
                        .find(|(id, _)| id == d)
                        .map_or(d.as_str(), |(_, n)| n)
                ),
                (None, Some(s)) => format!(
                    "Event pipeline, as events of source “{}”",
                    sources
                        .iter()
                        .find(|(id, _)| id == s)
                        .map_or(s.as_str(), |(_, n)| n)
                ),
                (None, None) => "Event pipeline".into(),
            },
            operation: m.operation.as_str(),
            event: m.event.clone(),
            on: m
                .on
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let (mapping_form, mapping_error) = match draft.mapping {
        Some((form, error)) => (form, Some(error)),
        None => (MappingForm::fresh(), None),
    };
    let (form, errors) = draft
        .settings
        .unwrap_or_else(|| (ModelForm::of(&model), ModelErrors::default()));
    let invalid = errors.any() || consent_error.is_some() || mapping_error.is_some();
    let status = match &draft.preview {
        Some(Err(_)) => StatusCode::BAD_REQUEST,
        _ if invalid => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let may_map_consent = if user.may(Method::PUT, CONSENT_MAPPING).is_ok() {
        Ok(())
    } else {
        Err(OWNER_CONSENT_MAPPING)
    };
    with_status(
        render(&ModelPage {
            shell: Shell::new(user, "retl", format!("Model “{}”", model.name))
                .with_flash(flash.ok, flash.error),
            connection,
            runs,
            preview: draft.preview,
            consent_rows,
            categories,
            consent_error,
            mappings,
            destinations,
            sources,
            mapping_form,
            mapping_error,
            form,
            errors,
            may_change: user.may(Method::PATCH, MODEL),
            may_preview: user.may(Method::POST, PREVIEW),
            may_map_consent,
            may_add_mapping: user.may(Method::POST, MAPPINGS),
            may_sync: user.may(Method::POST, SYNC),
            model,
        }),
        status,
    )
}

async fn load_model(app: &Arc<App>, id: &str) -> Result<ModelView, Response> {
    api::get_model(State(Arc::clone(app)), Path(id.to_owned()))
        .await
        .map(|Json(m)| m)
        .map_err(|e| failed("/retl", &e))
}

async fn model_detail(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    match load_model(&app, &id).await {
        Ok(model) => model_page(&app, &user, model, ModelDraft::default(), flash).await,
        Err(response) => response,
    }
}

async fn save_model(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(mut form): Form<ModelForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::PATCH, MODEL) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let model = match load_model(&app, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    form.csrf.clear();
    form.connection_id = model.connection_id.clone();
    let mut errors = ModelErrors::default();
    let (schedule, limit) = form.numbers(&mut errors);
    if errors.any() {
        let draft = ModelDraft {
            settings: Some((form, errors)),
            ..ModelDraft::default()
        };
        return model_page(&app, &user, model, draft, no_flash()).await;
    }
    // Only what changed: a new query or id column is checked against the warehouse again.
    let mut patch = serde_json::Map::new();
    if form.name != model.name {
        patch.insert("name".into(), json!(form.name));
    }
    if form.query != model.query {
        patch.insert("query".into(), json!(form.query));
    }
    if form.unique_id_column.trim() != model.unique_id_column {
        patch.insert("uniqueIdColumn".into(), json!(form.unique_id_column.trim()));
    }
    if form.user_id() != json!(model.user_id_column) {
        patch.insert("userIdColumn".into(), form.user_id());
    }
    let current_schedule = model
        .schedule
        .as_ref()
        .map_or(Value::Null, |s| json!({"everySeconds": s.every_seconds}));
    if schedule != current_schedule {
        patch.insert("schedule".into(), schedule);
    }
    if limit != json!(model.row_limit) {
        patch.insert("rowLimit".into(), limit);
    }
    let here = format!("/retl/models/{id}");
    if patch.is_empty() {
        return back(&here, "ok", "Nothing changed.");
    }
    let result = match body(Value::Object(patch)) {
        Ok(request) => {
            api::patch_model(State(Arc::clone(&app)), caller, Path(id), ApiJson(request)).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Json(after)) => back(&here, "ok", &format!("Model “{}” saved.", after.name)),
        Err(e) => {
            let draft = ModelDraft {
                settings: Some((form, ModelErrors::from_api(&e))),
                ..ModelDraft::default()
            };
            model_page(&app, &user, model, draft, no_flash()).await
        }
    }
}

async fn preview(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(refused) = user.guard(&form.csrf, Method::POST, PREVIEW) {
        return refused;
    }
    let model = match load_model(&app, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let preview = api::preview(State(Arc::clone(&app)), Path(id))
        .await
        .map(|Json(p)| p)
        .map_err(|e| field_message(&e.message, ""));
    let draft = ModelDraft {
        preview: Some(preview),
        ..ModelDraft::default()
    };
    model_page(&app, &user, model, draft, no_flash()).await
}

/// The consent mapping editor sends `column` and `category` pairs, in the order of the rows.
async fn consent_mapping(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "_csrf")
        .map_or("", |(_, v)| v.as_str());
    let caller = match user.guard(csrf, Method::PUT, CONSENT_MAPPING) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let columns: Vec<&String> = fields
        .iter()
        .filter(|(k, _)| k == "column")
        .map(|(_, v)| v)
        .collect();
    let categories: Vec<&String> = fields
        .iter()
        .filter(|(k, _)| k == "category")
        .map(|(_, v)| v)
        .collect();
    let chosen: BTreeMap<String, String> = columns
        .iter()
        .zip(categories.iter())
        .filter(|(_, category)| !category.is_empty())
        .map(|(column, category)| ((*column).clone(), (*category).clone()))
        .collect();
    let here = format!("/retl/models/{id}");
    let result = match body(json!({"columns": chosen})) {
        Ok(request) => {
            api::put_consent_mapping(
                State(Arc::clone(&app)),
                caller,
                Path(id.clone()),
                ApiJson(request),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Json(after)) if after.consent_mapping.columns.is_empty() => back(
            &here,
            "ok",
            "Consent mapping saved: no column is mapped, so consent is not enforced for this model.",
        ),
        Ok(Json(after)) => back(
            &here,
            "ok",
            &format!(
                "Consent mapping saved: {} consent column{} enforced from the next sync.",
                after.consent_mapping.columns.len(),
                if after.consent_mapping.columns.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ),
        ),
        Err(e) => match load_model(&app, &id).await {
            Ok(model) => {
                let draft = ModelDraft {
                    consent: Some((chosen, field_message(&e.message, "columns"))),
                    ..ModelDraft::default()
                };
                model_page(&app, &user, model, draft, no_flash()).await
            }
            Err(response) => response,
        },
    }
}

async fn create_mapping(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(mut form): Form<MappingForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, MAPPINGS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    form.csrf.clear();
    let mut request = serde_json::Map::new();
    match form.target.split_once(':') {
        Some(("destination", dest)) => {
            request.insert("destinationId".into(), json!(dest));
        }
        Some(("source", source)) => {
            request.insert("connections".into(), json!(true));
            request.insert("sourceId".into(), json!(source));
        }
        _ => {}
    }
    request.insert("operation".into(), json!(form.operation));
    if form.operation == "track" {
        request.insert("event".into(), json!(form.event.trim()));
    }
    let on: Vec<&str> = [
        ("added", &form.on_added),
        ("updated", &form.on_updated),
        ("deleted", &form.on_deleted),
    ]
    .iter()
    .filter(|(_, v)| v.is_some())
    .map(|(c, _)| *c)
    .collect();
    request.insert("on".into(), json!(on));
    let error = if form.target.is_empty() {
        Some("Choose where the records go: a destination, or the event pipeline.".to_owned())
    } else if on.is_empty() {
        Some("Choose at least one change to send: added, updated or deleted records.".to_owned())
    } else {
        let result = match body(Value::Object(request)) {
            Ok(b) => {
                api::create_mapping(
                    State(Arc::clone(&app)),
                    caller,
                    Path(id.clone()),
                    ApiJson(b),
                )
                .await
            }
            Err(_) => Err(ApiError::bad_request(
                "invalid",
                "choose identify or track as the event type",
            )),
        };
        match result {
            Ok(_) => {
                return back(
                    &format!("/retl/models/{id}"),
                    "ok",
                    "Mapping added. The next sync sends this model's records there.",
                );
            }
            Err(e) => Some(field_message(&e.message, "")),
        }
    };
    let error = error.unwrap_or_default();
    match load_model(&app, &id).await {
        Ok(model) => {
            let draft = ModelDraft {
                mapping: Some((form, error)),
                ..ModelDraft::default()
            };
            model_page(&app, &user, model, draft, no_flash()).await
        }
        Err(response) => response,
    }
}

async fn delete_mapping(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path((id, mapping_id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, MAPPING) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/retl/models/{id}");
    match api::delete_mapping(State(app), caller, Path((id, mapping_id))).await {
        Ok(_) => back(&here, "ok", "Mapping removed."),
        Err(e) => failed(&here, &e),
    }
}

async fn sync(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, SYNC) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/retl/models/{id}");
    match api::sync(State(app), caller, Path(id)).await {
        Ok(_) => back(
            &format!("{here}#runs-heading"),
            "ok",
            "Sync started. Its progress shows in the run history below.",
        ),
        Err(e) => failed(&here, &e),
    }
}

async fn delete_model(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ConfirmByName>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, MODEL) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/retl/models/{id}");
    match load_model(&app, &id).await {
        Ok(m) => {
            if let Err(refused) = confirmed(&form.confirm_name, &m.name, &here, "model") {
                return refused;
            }
        }
        Err(response) => return response,
    }
    match api::delete_model(State(app), caller, Path(id)).await {
        Ok(_) => back(
            "/retl",
            "ok",
            &format!(
                "Model “{}” deleted, with its mappings and run history.",
                form.confirm_name
            ),
        ),
        Err(e) => failed(&here, &e),
    }
}

/// A run's JSON for `retl.js`: what `GET /api/v1/retl/runs/{id}` answers, for the session.
async fn run_progress(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    if let Err(reason) = user.may(Method::GET, RUN) {
        return user.refuse(reason);
    }
    match api::get_run(State(app), Path(id)).await {
        Ok(run) => run.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_show_in_their_largest_whole_unit() {
        assert_eq!(schedule_parts(None), (String::new(), "hours".into()));
        assert_eq!(schedule_parts(Some(7_200)), ("2".into(), "hours".into()));
        assert_eq!(schedule_parts(Some(90)), ("90".into(), "seconds".into()));
        assert_eq!(schedule_parts(Some(600)), ("10".into(), "minutes".into()));
        assert_eq!(schedule_parts(Some(172_800)), ("2".into(), "days".into()));
    }

    #[test]
    fn model_numbers_become_api_values() {
        let numbers = |every: &str, unit: &str, limit: &str| {
            let form = ModelForm {
                schedule_every: every.into(),
                schedule_unit: unit.into(),
                row_limit: limit.into(),
                ..ModelForm::default()
            };
            let mut errors = ModelErrors::default();
            let values = form.numbers(&mut errors);
            (values, errors)
        };
        let (values, errors) = numbers("", "hours", "");
        assert_eq!(values, (Value::Null, Value::Null));
        assert!(!errors.any());
        let (values, errors) = numbers("2", "hours", " 500 ");
        assert_eq!(values, (json!({"everySeconds": 7200}), json!(500)));
        assert!(!errors.any());
        assert!(numbers("soon", "hours", "").1.schedule.is_some());
        assert!(numbers("", "hours", "many").1.row_limit.is_some());
        // Overflow is an error, not a wrap-around.
        assert!(numbers("4294967295", "days", "").1.schedule.is_some());
    }

    #[test]
    fn api_messages_go_next_to_their_fields() {
        let e = ApiError::bad_request(
            "unknown_column",
            "uniqueIdColumn: the query returns no column \"uid\"; it returns id, email",
        );
        let errors = ModelErrors::from_api(&e);
        assert_eq!(
            errors.unique_id.as_deref(),
            Some("The query returns no column \"uid\"; it returns id, email.")
        );
        let e = ApiError::bad_request("invalid_query", "only one SELECT statement is allowed");
        assert!(ModelErrors::from_api(&e).query.is_some());
        let e = ApiError::bad_request("invalid", "a connection needs a URL like postgres://…");
        assert!(ConnectionErrors::from_api(&e).url.is_some());
    }

    #[test]
    fn test_results_are_short_sentences() {
        let tested = |ok: bool, message: &str| Tested {
            connection_id: "conn_1".into(),
            result: TestView {
                ok,
                code: (!ok).then(|| "unreachable".to_owned()),
                message: message.into(),
                server_version: None,
                latency_ms: 12,
            },
        };
        assert_eq!(
            tested(
                true,
                "connected to PostgreSQL 16.2 (Debian 16.2-1) on x86_64-pc-linux-gnu, compiled by gcc"
            )
            .text(),
            "Connection works: connected to PostgreSQL 16.2 (12 ms)."
        );
        assert_eq!(
            tested(false, "nothing answers at 127.0.0.1:1").text(),
            "Connection failed: nothing answers at 127.0.0.1:1."
        );
    }

    #[test]
    fn preview_cells_are_text() {
        assert_eq!(cell(&json!("a")), "a");
        assert_eq!(cell(&Value::Null), "NULL");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(cell(&json!(1.5)), "1.5");
    }
}
