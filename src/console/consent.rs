//! Consent management: the categories table, the create flow (prerequisites, then the form),
//! edit, disable by typing the name, enable, delete, and the workspace's consent settings.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::ConsoleUser;
use super::page::{ConfirmByName, CsrfOnly, Shell, back, confirmed, render, sentence};
use super::{body, failed};
use crate::admin::ApiJson;
use crate::admin::categories as api;
use crate::app::App;
use crate::error::ApiError;
use crate::store::{Category, Destination};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/consent", get(list))
        .route("/consent/settings", post(settings))
        .route("/consent/new", get(new_page).post(create))
        .route("/consent/{id}/edit", get(edit_page).post(edit))
        .route("/consent/{id}/disable", post(disable))
        .route("/consent/{id}/enable", post(enable))
        .route("/consent/{id}/delete", post(delete))
}

const CATEGORIES: &str = "/api/v1/consent/categories";
const CATEGORY: &str = "/api/v1/consent/categories/{id}";

#[derive(Deserialize)]
pub struct Flash {
    ok: Option<String>,
    error: Option<String>,
}

/// A category row as shown: mapped destinations by name.
struct Row {
    category: Category,
    destinations: Vec<(String, String)>,
}

#[derive(askama::Template)]
#[template(path = "console/consent.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    unmapped: Vec<Destination>,
    missing_consent_policy: &'static str,
    multi_category_rule: &'static str,
    may_change: Result<(), &'static str>,
}

fn names(destinations: &[Destination]) -> HashMap<&str, &str> {
    destinations
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str()))
        .collect()
}

async fn list(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(flash): Query<Flash>,
) -> Response {
    let (categories, destinations, workspace) = match tokio::try_join!(
        app.store.categories(),
        app.store.destinations(),
        app.store.workspace()
    ) {
        Ok(all) => all,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let by_id = names(&destinations);
    // A destination is unmapped when no enabled category maps it: it receives every event.
    let unmapped = destinations
        .iter()
        .filter(|d| d.enabled && d.enforce_consent)
        .filter(|d| {
            !categories
                .iter()
                .any(|c| c.enabled && c.destinations.contains(&d.id))
        })
        .cloned()
        .collect();
    let rows = categories
        .into_iter()
        .map(|category| {
            let destinations = category
                .destinations
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        by_id
                            .get(id.as_str())
                            .map_or_else(|| id.clone(), |n| (*n).to_owned()),
                    )
                })
                .collect();
            Row {
                category,
                destinations,
            }
        })
        .collect();
    render(&ListPage {
        shell: Shell::new(&user, "consent", "Consent management").with_flash(flash.ok, flash.error),
        rows,
        unmapped,
        missing_consent_policy: match workspace.missing_consent_policy {
            crate::consent::MissingConsentPolicy::Allow => "allow",
            crate::consent::MissingConsentPolicy::Deny => "deny",
        },
        multi_category_rule: match workspace.multi_category_rule {
            crate::consent::MultiCategoryRule::All => "all",
            crate::consent::MultiCategoryRule::Any => "any",
        },
        may_change: user.may(Method::POST, CATEGORIES),
    })
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    missing_consent_policy: String,
    multi_category_rule: String,
}

async fn settings(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<SettingsForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::PATCH, "/api/v1/workspace") {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let patch = match body(json!({
        "missingConsentPolicy": form.missing_consent_policy,
        "multiCategoryRule": form.multi_category_rule,
    })) {
        Ok(p) => p,
        Err(e) => return failed("/consent", &e),
    };
    match crate::admin::workspace::patch(State(app), caller, ApiJson(patch)).await {
        Ok(_) => back("/consent", "ok", "Consent settings saved."),
        Err(e) => failed("/consent", &e),
    }
}

/// The category form, for create and edit.
#[derive(askama::Template)]
#[template(path = "console/consent_form.html")]
struct FormPage {
    shell: Shell,
    /// `None` when creating.
    editing: Option<String>,
    /// Create flow: `prerequisites` or `form`.
    step: &'static str,
    prerequisites_error: bool,
    id: String,
    name: String,
    selected: Vec<String>,
    destinations: Vec<Destination>,
    errors: FieldErrors,
    may_change: Result<(), &'static str>,
}

#[derive(Default)]
struct FieldErrors {
    id: Option<String>,
    name: Option<String>,
    destinations: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.id.is_some()
            || self.name.is_some()
            || self.destinations.is_some()
            || self.form.is_some()
    }

    /// Put an API error next to the field it is about.
    fn from_api(message: String) -> FieldErrors {
        let message = sentence(message);
        let mut errors = FieldErrors::default();
        let lower = message.to_lowercase();
        if lower.contains("category id") || lower.contains("with this id") {
            errors.id = Some(message);
        } else if lower.contains("name") {
            errors.name = Some(message);
        } else if lower.contains("destination") {
            errors.destinations = Some(message);
        } else {
            errors.form = Some(message);
        }
        errors
    }
}

impl FormPage {
    fn is_selected(&self, id: &str) -> bool {
        self.selected.iter().any(|s| s == id)
    }
}

#[derive(Deserialize)]
struct NewQuery {
    step: Option<String>,
    cmp: Option<String>,
    mapping: Option<String>,
}

async fn new_page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(q): Query<NewQuery>,
) -> Response {
    let destinations = match app.store.destinations().await {
        Ok(d) => d,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // The form comes after both prerequisites are confirmed (SPEC §1; Segment's flow).
    let confirmed = q.cmp.is_some() && q.mapping.is_some();
    let asked = q.step.as_deref() == Some("form");
    let step = if asked && confirmed {
        "form"
    } else {
        "prerequisites"
    };
    render(&FormPage {
        shell: Shell::new(&user, "consent", "Create a consent category"),
        editing: None,
        step,
        prerequisites_error: asked && !confirmed,
        id: String::new(),
        name: String::new(),
        selected: Vec::new(),
        destinations,
        errors: FieldErrors::default(),
        may_change: user.may(Method::POST, CATEGORIES),
    })
}

/// Category form fields; `destinations` repeats once per checked box.
#[derive(Deserialize)]
struct CategoryForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    destinations: Vec<String>,
}

/// Parse an urlencoded form where `destinations` may repeat (serde_urlencoded cannot).
fn parse_form(raw: &[u8]) -> CategoryForm {
    let mut form = CategoryForm {
        csrf: String::new(),
        id: String::new(),
        name: String::new(),
        destinations: Vec::new(),
    };
    for (key, value) in form_urlencoded::parse(raw) {
        match key.as_ref() {
            "_csrf" => form.csrf = value.into_owned(),
            "id" => form.id = value.into_owned(),
            "name" => form.name = value.into_owned(),
            "destinations" => form.destinations.push(value.into_owned()),
            _ => {}
        }
    }
    form
}

async fn form_error(
    app: &App,
    user: &ConsoleUser,
    editing: Option<String>,
    form: CategoryForm,
    errors: FieldErrors,
) -> Response {
    let destinations = app.store.destinations().await.unwrap_or_default();
    let title = if editing.is_some() {
        "Edit consent category"
    } else {
        "Create a consent category"
    };
    let may_change = user.may(Method::POST, CATEGORIES);
    let mut response = render(&FormPage {
        shell: Shell::new(user, "consent", title),
        editing,
        step: "form",
        prerequisites_error: false,
        id: form.id,
        name: form.name,
        selected: form.destinations,
        destinations,
        errors,
        may_change,
    });
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// The id and name rules, checked here too so both errors show at once, next to their fields.
fn validate(form: &CategoryForm) -> FieldErrors {
    FieldErrors {
        id: crate::store::validate_category_id(&form.id)
            .err()
            .map(|e| sentence(e.to_string())),
        name: crate::store::validate_category_name(&form.name)
            .err()
            .map(|e| sentence(e.to_string())),
        ..FieldErrors::default()
    }
}

async fn create(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    raw: axum::body::Bytes,
) -> Response {
    let form = parse_form(&raw);
    let caller = match user.guard(&form.csrf, Method::POST, CATEGORIES) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let errors = validate(&form);
    if errors.any() {
        return form_error(&app, &user, None, form, errors).await;
    }
    let request =
        match body(json!({"id": form.id, "name": form.name, "destinations": form.destinations})) {
            Ok(b) => b,
            Err(e) => {
                return form_error(&app, &user, None, form, FieldErrors::from_api(e.message)).await;
            }
        };
    match api::create(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok((_, Json(_))) => back(
            "/consent",
            "ok",
            &format!("Category “{}” created.", form.name),
        ),
        Err(e) => form_error(&app, &user, None, form, FieldErrors::from_api(e.message)).await,
    }
}

async fn edit_page(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let (category, destinations) =
        match tokio::try_join!(app.store.category(&id), app.store.destinations()) {
            Ok(all) => all,
            Err(e) => return back("/consent", "error", &e.to_string()),
        };
    render(&FormPage {
        shell: Shell::new(&user, "consent", format!("Edit “{}”", category.name)),
        editing: Some(category.id.clone()),
        step: "form",
        prerequisites_error: false,
        id: category.id,
        name: category.name,
        selected: category.destinations,
        destinations,
        errors: FieldErrors::default(),
        may_change: user.may(Method::PATCH, CATEGORY),
    })
}

async fn edit(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let form = parse_form(&raw);
    let caller = match user.guard(&form.csrf, Method::PATCH, CATEGORY) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let errors = validate(&form);
    if errors.any() {
        return form_error(&app, &user, Some(id), form, errors).await;
    }
    let request =
        match body(json!({"id": form.id, "name": form.name, "destinations": form.destinations})) {
            Ok(b) => b,
            Err(e) => {
                return form_error(
                    &app,
                    &user,
                    Some(id),
                    form,
                    FieldErrors::from_api(e.message),
                )
                .await;
            }
        };
    match api::patch(
        State(Arc::clone(&app)),
        caller,
        Path(id.clone()),
        ApiJson(request),
    )
    .await
    {
        Ok(_) => back(
            "/consent",
            "ok",
            &format!("Category “{}” saved.", form.name),
        ),
        Err(e) => {
            form_error(
                &app,
                &user,
                Some(id),
                form,
                FieldErrors::from_api(e.message),
            )
            .await
        }
    }
}

async fn disable(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ConfirmByName>,
) -> Response {
    let caller = match user.guard(
        &form.csrf,
        Method::POST,
        "/api/v1/consent/categories/{id}/disable",
    ) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let request = match body(json!({"confirmName": form.confirm_name})) {
        Ok(b) => b,
        Err(e) => return failed("/consent", &e),
    };
    match api::disable(State(app), caller, Path(id), ApiJson(request)).await {
        Ok(Json(_)) => back(
            "/consent",
            "ok",
            &format!(
                "Category “{}” turned off. Its destinations no longer wait for this consent.",
                form.confirm_name
            ),
        ),
        Err(e) => failed("/consent", &e),
    }
}

async fn enable(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    let caller = match user.guard(
        &form.csrf,
        Method::POST,
        "/api/v1/consent/categories/{id}/enable",
    ) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    match api::enable(State(app), caller, Path(id.clone())).await {
        Ok(Json(_)) => back(
            "/consent",
            "ok",
            &format!("Category {id} turned on and enforced again."),
        ),
        Err(e) => failed("/consent", &e),
    }
}

async fn delete(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ConfirmByName>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, CATEGORY) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    match app.store.category(&id).await {
        Ok(c) => {
            if let Err(refused) = confirmed(&form.confirm_name, &c.name, "/consent", "category") {
                return refused;
            }
        }
        Err(e) => return back("/consent", "error", &e.to_string()),
    }
    match api::delete(State(app), caller, Path(id.clone())).await {
        Ok(_) => back(
            "/consent",
            "ok",
            &format!(
                "Category “{}” deleted with its mappings.",
                form.confirm_name
            ),
        ),
        Err(e) => failed("/consent", &e),
    }
}
