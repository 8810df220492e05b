//! Sources: the list with the create form, and per source its write key, ready-to-paste
//! browser snippets (analytics.js through this server's CDN endpoint, and the `consent.js`
//! banner), its settings, enable / disable and delete.
//!
//! Write keys are shown in full to owners, as the API does (SPEC §1), and once to the member
//! who creates a source; everyone else sees the masked key and snippets with a placeholder.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ConsoleUser;
use super::page::{ConfirmByName, CsrfOnly, Shell, back, confirmed, render};
use super::{body, failed};
use crate::admin::ApiJson;
use crate::admin::sources::{self as api, SourceView};
use crate::app::App;
use crate::consent::MissingConsentPolicy;
use crate::error::ApiError;
use crate::store::Role;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/sources", get(list).post(create))
        .route("/sources/{id}", get(detail).post(save))
        .route("/sources/{id}/enable", post(enable))
        .route("/sources/{id}/disable", post(disable))
        .route("/sources/{id}/delete", post(delete))
}

const SOURCES: &str = "/api/v1/sources";
const SOURCE: &str = "/api/v1/sources/{id}";
/// Shown in snippets to people who may not see the write key.
const KEY_PLACEHOLDER: &str = "YOUR_WRITE_KEY";

#[derive(Deserialize)]
pub struct Flash {
    ok: Option<String>,
    error: Option<String>,
}

/// Errors of the source form, next to their fields.
#[derive(Default)]
struct FieldErrors {
    name: Option<String>,
    rate: Option<String>,
    policy: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.name.is_some() || self.rate.is_some() || self.policy.is_some() || self.form.is_some()
    }

    /// Put an API error next to the field it is about.
    fn from_api(message: String) -> FieldErrors {
        let mut errors = FieldErrors::default();
        if message.contains("rateLimitPerSecond") {
            errors.rate = Some(message);
        } else if message.contains("missingConsentPolicy") {
            errors.policy = Some(message);
        } else if message.contains("name") {
            errors.name = Some(message);
        } else {
            errors.form = Some(message);
        }
        errors
    }
}

/// The fields of the create and settings forms, as typed.
#[derive(Deserialize, Default)]
struct SourceForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Events per second; empty for no limit.
    #[serde(default)]
    rate_limit: String,
    /// `""` (the workspace's policy), `allow` or `deny`.
    #[serde(default)]
    missing_consent_policy: String,
}

impl SourceForm {
    fn of(source: &SourceView) -> SourceForm {
        SourceForm {
            csrf: String::new(),
            name: source.name.clone(),
            rate_limit: source
                .rate_limit_per_second
                .map(|r| r.to_string())
                .unwrap_or_default(),
            missing_consent_policy: source
                .missing_consent_policy
                .map(policy_str)
                .unwrap_or("")
                .to_owned(),
        }
    }

    /// The API body's fields, or the errors of the fields that are not even the right shape.
    fn fields(&self) -> Result<(Value, Value), FieldErrors> {
        let mut errors = FieldErrors::default();
        let rate = match self.rate_limit.trim() {
            "" => Value::Null,
            text => match text.parse::<u32>() {
                Ok(n) => json!(n),
                Err(_) => {
                    errors.rate =
                        Some("Enter a whole number of events per second, or leave it empty for no limit.".into());
                    Value::Null
                }
            },
        };
        let policy = match self.missing_consent_policy.as_str() {
            "" => Value::Null,
            "allow" | "deny" => json!(self.missing_consent_policy),
            _ => {
                errors.policy = Some("Choose one of the listed options.".into());
                Value::Null
            }
        };
        if errors.any() {
            Err(errors)
        } else {
            Ok((rate, policy))
        }
    }
}

fn policy_str(policy: MissingConsentPolicy) -> &'static str {
    match policy {
        MissingConsentPolicy::Allow => "allow",
        MissingConsentPolicy::Deny => "deny",
    }
}

fn no_flash() -> Flash {
    Flash {
        ok: None,
        error: None,
    }
}

async fn workspace_policy(app: &App) -> &'static str {
    app.store
        .workspace()
        .await
        .map_or("allow", |w| policy_str(w.missing_consent_policy))
}

#[derive(askama::Template)]
#[template(path = "console/sources.html")]
struct ListPage {
    shell: Shell,
    sources: Vec<SourceView>,
    workspace_policy: &'static str,
    form: SourceForm,
    errors: FieldErrors,
    may_create: Result<(), &'static str>,
}

impl ListPage {
    /// Whether the form's fields are read-only for this user.
    fn locked(&self) -> bool {
        self.may_create.is_err()
    }

    fn policy_label(&self, policy: &Option<MissingConsentPolicy>) -> &'static str {
        match policy {
            None => "Workspace rule",
            Some(MissingConsentPolicy::Allow) => "Deliver",
            Some(MissingConsentPolicy::Deny) => "Refuse all categories",
        }
    }
}

async fn list_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    form: SourceForm,
    errors: FieldErrors,
    flash: Flash,
) -> Response {
    let Json(sources) = match api::list(State(Arc::clone(app)), user.caller()).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    render(&ListPage {
        shell: Shell::new(user, "sources", "Sources").with_flash(flash.ok, flash.error),
        sources,
        workspace_policy: workspace_policy(app).await,
        form,
        errors,
        may_create: user.may(Method::POST, SOURCES),
    })
}

async fn list(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(flash): Query<Flash>,
) -> Response {
    list_page(
        &app,
        &user,
        SourceForm::default(),
        FieldErrors::default(),
        flash,
    )
    .await
}

/// The list again, with the create form's errors next to its fields.
async fn invalid(
    app: &Arc<App>,
    user: &ConsoleUser,
    form: SourceForm,
    errors: FieldErrors,
) -> Response {
    let mut response = list_page(app, user, form, errors, no_flash()).await;
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

async fn create(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<SourceForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, SOURCES) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let (rate, policy) = match form.fields() {
        Ok(f) => f,
        Err(errors) => return invalid(&app, &user, form, errors).await,
    };
    let request = match body(
        json!({"name": form.name, "rateLimitPerSecond": rate, "missingConsentPolicy": policy}),
    ) {
        Ok(b) => b,
        Err(e) => return invalid(&app, &user, form, FieldErrors::from_api(e.message)).await,
    };
    match api::create(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok((_, Json(created))) if user.is(Role::Owner) => back(
            &format!("/sources/{}", created.id),
            "ok",
            &format!(
                "Source “{}” created. Copy its write key or a snippet below.",
                created.name
            ),
        ),
        // Members see the write key only now, as in the API's answer to creation.
        Ok((_, Json(created))) => {
            let message = format!(
                "Source “{}” created. Copy its write key now: only owners can see it again.",
                created.name
            );
            detail_page(
                &app,
                &user,
                &headers,
                created,
                true,
                None,
                Flash {
                    ok: Some(message),
                    error: None,
                },
            )
            .await
        }
        Err(e) => invalid(&app, &user, form, FieldErrors::from_api(e.message)).await,
    }
}

#[derive(askama::Template)]
#[template(path = "console/sources_detail.html")]
struct DetailPage {
    shell: Shell,
    source: SourceView,
    /// Whether `source.write_key` is the key itself (owners; a member right after creating).
    full_key: bool,
    base_url: String,
    public_url_configured: bool,
    analytics_snippet: String,
    consent_snippet: String,
    site_snippet: String,
    workspace_policy: &'static str,
    form: SourceForm,
    errors: FieldErrors,
    may_change: Result<(), &'static str>,
}

impl DetailPage {
    fn locked(&self) -> bool {
        self.may_change.is_err()
    }
}

/// Where browsers reach this server: `--public-url`, else the address this console is
/// reached at (what the CDN endpoint itself falls back to).
fn base_url(app: &App, headers: &HeaderMap) -> (String, bool) {
    if app.config.server.public_url.is_some() {
        return (app.public_url(), true);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty() && h.len() < 256 && !h.contains(['/', ' ', '"', '\'', '<', '>', '\\'])
        });
    match host {
        Some(host) => (format!("http://{host}"), false),
        None => (app.public_url(), false),
    }
}

/// analytics-next loading its settings from this server (README, browser setup): the settings
/// document points `Segment.io` at this server, so `writeKey` and `cdnURL` are all it needs.
fn analytics_snippet(write_key: &str, base: &str) -> String {
    format!(
        "import {{ AnalyticsBrowser }} from '@segment/analytics-next'\n\n\
         export const analytics = AnalyticsBrowser.load({{\n  writeKey: '{write_key}',\n  cdnURL: '{base}',\n}})\n"
    )
}

/// The attributes `consent.js` reads: `data-write-key` (and the optional `data-cookie-domain`).
fn consent_snippet(write_key: &str, base: &str) -> String {
    format!("<script src=\"{base}/consent.js\" data-write-key=\"{write_key}\"></script>\n")
}

/// With consent.js, the site creates analytics-next without loading it; consent.js loads it.
const SITE_SNIPPET: &str = "import { AnalyticsBrowser } from '@segment/analytics-next'\n\n\
// consent.js calls load() once the visitor's choice allows it: do not call it here.\n\
window.analytics = new AnalyticsBrowser()\n";

/// The source page; `draft` is a settings form sent back with its errors.
async fn detail_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    headers: &HeaderMap,
    source: SourceView,
    full_key: bool,
    draft: Option<(SourceForm, FieldErrors)>,
    flash: Flash,
) -> Response {
    let key = if full_key {
        source.write_key.clone()
    } else {
        KEY_PLACEHOLDER.to_owned()
    };
    let (base, public_url_configured) = base_url(app, headers);
    let (form, errors) = draft.unwrap_or_else(|| (SourceForm::of(&source), FieldErrors::default()));
    let status = if errors.any() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = render(&DetailPage {
        shell: Shell::new(user, "sources", format!("Source “{}”", source.name))
            .with_flash(flash.ok, flash.error),
        analytics_snippet: analytics_snippet(&key, &base),
        consent_snippet: consent_snippet(&key, &base),
        site_snippet: SITE_SNIPPET.to_owned(),
        source,
        full_key,
        base_url: base,
        public_url_configured,
        workspace_policy: workspace_policy(app).await,
        form,
        errors,
        may_change: user.may(Method::PATCH, SOURCE),
    });
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

async fn detail(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    match api::get(State(Arc::clone(&app)), user.caller(), Path(id)).await {
        // The API gives owners the key in full and everyone else a masked one.
        Ok(Json(source)) => {
            detail_page(
                &app,
                &user,
                &headers,
                source,
                user.is(Role::Owner),
                None,
                flash,
            )
            .await
        }
        Err(e) => failed("/sources", &e),
    }
}

async fn save(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<SourceForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::PATCH, SOURCE) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/sources/{id}");
    let Ok(Json(source)) = api::get(State(Arc::clone(&app)), user.caller(), Path(id.clone())).await
    else {
        return back("/sources", "error", &format!("No source with id {id}."));
    };
    let owner = user.is(Role::Owner);
    let (rate, policy) = match form.fields() {
        Ok(f) => f,
        Err(errors) => {
            return detail_page(
                &app,
                &user,
                &headers,
                source,
                owner,
                Some((form, errors)),
                no_flash(),
            )
            .await;
        }
    };
    let request = match body(
        json!({"name": form.name, "rateLimitPerSecond": rate, "missingConsentPolicy": policy}),
    ) {
        Ok(b) => b,
        Err(e) => {
            let errors = FieldErrors::from_api(e.message);
            return detail_page(
                &app,
                &user,
                &headers,
                source,
                owner,
                Some((form, errors)),
                no_flash(),
            )
            .await;
        }
    };
    match api::patch(State(Arc::clone(&app)), caller, Path(id), ApiJson(request)).await {
        Ok(Json(after)) => back(&here, "ok", &format!("Source “{}” saved.", after.name)),
        Err(e) => {
            let errors = FieldErrors::from_api(e.message);
            detail_page(
                &app,
                &user,
                &headers,
                source,
                owner,
                Some((form, errors)),
                no_flash(),
            )
            .await
        }
    }
}

async fn set_enabled(
    app: Arc<App>,
    user: ConsoleUser,
    id: String,
    csrf: &str,
    enabled: bool,
) -> Response {
    let caller = match user.guard(csrf, Method::PATCH, SOURCE) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/sources/{id}");
    let request = match body(json!({"enabled": enabled})) {
        Ok(b) => b,
        Err(e) => return failed(&here, &e),
    };
    match api::patch(State(app), caller, Path(id), ApiJson(request)).await {
        Ok(Json(after)) if enabled => back(
            &here,
            "ok",
            &format!(
                "Source “{}” turned on: it accepts events again.",
                after.name
            ),
        ),
        Ok(Json(after)) => back(
            &here,
            "ok",
            &format!(
                "Source “{}” turned off: its write key is refused until you turn it on again.",
                after.name
            ),
        ),
        Err(e) => failed(&here, &e),
    }
}

async fn enable(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    set_enabled(app, user, id, &form.csrf, true).await
}

async fn disable(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    set_enabled(app, user, id, &form.csrf, false).await
}

async fn delete(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ConfirmByName>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, SOURCE) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/sources/{id}");
    match app.store.source(&id).await {
        Ok(s) => {
            if let Err(refused) = confirmed(&form.confirm_name, &s.name, &here, "source") {
                return refused;
            }
        }
        Err(e) => return failed("/sources", &ApiError::from(e)),
    }
    match api::delete(State(app), caller, Path(id)).await {
        Ok(_) => back(
            "/sources",
            "ok",
            &format!(
                "Source “{}” deleted. Its write key no longer works.",
                form.confirm_name
            ),
        ),
        Err(e) => failed(&here, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_hold_the_key_and_the_base_url() {
        let a = analytics_snippet("KEY123", "https://events.example.com");
        assert!(
            a.contains("writeKey: 'KEY123'") && a.contains("cdnURL: 'https://events.example.com'"),
            "{a}"
        );
        let c = consent_snippet("KEY123", "https://events.example.com");
        assert_eq!(
            c,
            "<script src=\"https://events.example.com/consent.js\" data-write-key=\"KEY123\"></script>\n"
        );
    }

    #[test]
    fn form_fields_are_checked_before_the_api() {
        let form = |rate: &str, policy: &str| SourceForm {
            rate_limit: rate.into(),
            missing_consent_policy: policy.into(),
            ..SourceForm::default()
        };
        assert_eq!(form("", "").fields().ok(), Some((Value::Null, Value::Null)));
        assert_eq!(
            form(" 50 ", "deny").fields().ok(),
            Some((json!(50), json!("deny")))
        );
        assert!(
            form("fast", "")
                .fields()
                .err()
                .is_some_and(|e| e.rate.is_some())
        );
        assert!(
            form("", "sometimes")
                .fields()
                .err()
                .is_some_and(|e| e.policy.is_some())
        );
    }
}
