//! Users and tokens: the list of users with their roles, adding a user (with an initial
//! console password), changing a role, setting a new password, removing a user (typing the
//! email to confirm), and API tokens: listed without their secrets, created with the secret
//! shown once on the answer page, revoked at once.
//!
//! Every action goes through the admin API's handlers and its role table. That table lets
//! only owners manage users and tokens (reading or creating tokens included), so members and
//! viewers see the list of users with the controls disabled and the API's reason.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ConsoleUser;
use super::page::{Shell, back, render, sentence};
use super::{body, failed};
use crate::admin::ApiJson;
use crate::admin::users::{self as api, TokenView, UserView};
use crate::app::App;
use crate::error::ApiError;
use crate::store::Role;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(detail))
        .route("/users/{id}/role", post(set_role))
        .route("/users/{id}/password", post(set_password))
        .route("/users/{id}/delete", post(delete))
        .route("/users/{id}/tokens", post(create_token))
        .route("/users/{id}/tokens/{token_id}/revoke", post(revoke_token))
}

const USERS: &str = "/api/v1/users";
const USER: &str = "/api/v1/users/{id}";
const TOKENS: &str = "/api/v1/users/{id}/tokens";
const TOKEN: &str = "/api/v1/users/{id}/tokens/{token_id}";

/// The roles for the role selects: `(value, name, what it may do)`.
const ROLES: &[(&str, &str, &str)] = &[
    (
        "viewer",
        "Viewer",
        "Viewer: sees everything, changes nothing",
    ),
    (
        "member",
        "Member",
        "Member: also changes sources, destinations and filters",
    ),
    (
        "owner",
        "Owner",
        "Owner: everything, including consent, users and tokens",
    ),
];

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

/// An API message as a sentence with a full stop.
fn message(text: impl Into<String>) -> String {
    let text = sentence(text);
    if text.ends_with(['.', '!', '?']) {
        text
    } else {
        format!("{text}.")
    }
}

/// Where the token forms send the browser back to.
fn page_path(from: &str, user_id: &str) -> String {
    if from == "list" {
        "/users".to_owned()
    } else {
        format!("/users/{user_id}")
    }
}

/// A user as the pages show them.
struct UserRow {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    has_password: bool,
    created_at: String,
    /// The signed-in user.
    me: bool,
}

impl UserRow {
    fn of(view: UserView, me: &ConsoleUser) -> UserRow {
        UserRow {
            me: view.id == me.user.id,
            id: view.id,
            name: view.name,
            email: view.email,
            role: view.role.as_str(),
            has_password: view.has_password,
            created_at: view.created_at,
        }
    }
}

/// The API tokens of one user, with the create form.
struct TokensSection {
    user_id: String,
    /// `list` (the users page) or `user` (the user's own page): where the forms come back to.
    from: &'static str,
    /// The signed-in user's own tokens.
    mine: bool,
    /// Whose tokens, for headings and labels: "your" or the user's name.
    whose: String,
    /// `None` when this user may not read them (the role table).
    tokens: Option<Vec<TokenView>>,
    may_create: Result<(), &'static str>,
    may_revoke: Result<(), &'static str>,
    /// The create form as typed, with its error.
    name: String,
    error: Option<String>,
    /// A token just created, with its secret: shown on this answer only.
    created: Option<TokenView>,
}

impl TokensSection {
    async fn load(
        app: &Arc<App>,
        user: &ConsoleUser,
        subject: &UserRow,
        from: &'static str,
    ) -> TokensSection {
        let may_read = user.may(Method::GET, TOKENS);
        let tokens = match may_read {
            Ok(()) => api::tokens(State(Arc::clone(app)), Path(subject.id.clone()))
                .await
                .ok()
                .map(|Json(t)| t),
            Err(_) => None,
        };
        TokensSection {
            user_id: subject.id.clone(),
            from,
            mine: subject.me,
            whose: if subject.me {
                "your".to_owned()
            } else {
                format!("{}’s", subject.name)
            },
            tokens,
            may_create: user.may(Method::POST, TOKENS),
            may_revoke: user.may(Method::DELETE, TOKEN),
            name: String::new(),
            error: None,
            created: None,
        }
    }

    fn locked(&self) -> bool {
        self.may_create.is_err()
    }

    fn active(&self) -> usize {
        self.tokens
            .as_ref()
            .map_or(0, |t| t.iter().filter(|t| t.revoked_at.is_none()).count())
    }
}

// ---- The list ---------------------------------------------------------------------------------

/// The add-user form as typed.
#[derive(Deserialize, Default)]
struct UserForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    /// Empty for a user without a console password (API tokens only).
    #[serde(default)]
    password: String,
}

/// Errors of the add-user form, next to their fields.
#[derive(Default)]
struct FieldErrors {
    name: Option<String>,
    email: Option<String>,
    role: Option<String>,
    password: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.name.is_some()
            || self.email.is_some()
            || self.role.is_some()
            || self.password.is_some()
            || self.form.is_some()
    }

    /// Put an API error next to the field it is about.
    fn from_api(text: &str) -> FieldErrors {
        let mut errors = FieldErrors::default();
        let shown = Some(message(text));
        if text.contains("password") {
            errors.password = shown;
        } else if text.contains("email") {
            errors.email = shown;
        } else if text.contains("role") || text.contains("variant") {
            errors.role = shown;
        } else if text.contains("name") {
            errors.name = shown;
        } else {
            errors.form = shown;
        }
        errors
    }
}

#[derive(askama::Template)]
#[template(path = "console/users.html")]
struct ListPage {
    shell: Shell,
    users: Vec<UserRow>,
    roles: &'static [(&'static str, &'static str, &'static str)],
    form: UserForm,
    errors: FieldErrors,
    may_create: Result<(), &'static str>,
    may_change: Result<(), &'static str>,
    may_delete: Result<(), &'static str>,
    tokens: TokensSection,
}

impl ListPage {
    fn locked(&self) -> bool {
        self.may_create.is_err()
    }
}

async fn list_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    form: UserForm,
    errors: FieldErrors,
    tokens: Option<TokensSection>,
    flash: Flash,
) -> Response {
    let Json(views) = match api::list(State(Arc::clone(app))).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let users: Vec<UserRow> = views.into_iter().map(|v| UserRow::of(v, user)).collect();
    let tokens = match tokens {
        Some(t) => t,
        None => {
            let me = UserRow::of(UserView::from(user.user.clone()), user);
            TokensSection::load(app, user, &me, "list").await
        }
    };
    let status = if errors.any() || tokens.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let form = UserForm {
        role: if form.role.is_empty() {
            "viewer".to_owned()
        } else {
            form.role
        },
        // A password typed is never sent back.
        password: String::new(),
        ..form
    };
    let mut response = render(&ListPage {
        shell: Shell::new(user, "users", "Users and tokens").with_flash(flash.ok, flash.error),
        users,
        roles: ROLES,
        form,
        errors,
        may_create: user.may(Method::POST, USERS),
        may_change: user.may(Method::PATCH, USER),
        may_delete: user.may(Method::DELETE, USER),
        tokens,
    });
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

async fn list(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Query(flash): Query<Flash>,
) -> Response {
    list_page(
        &app,
        &user,
        UserForm::default(),
        FieldErrors::default(),
        None,
        flash,
    )
    .await
}

async fn create(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Form(form): Form<UserForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, USERS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let invalid = |form: UserForm, errors: FieldErrors| {
        let app = Arc::clone(&app);
        let user = user.clone();
        async move { list_page(&app, &user, form, errors, None, no_flash()).await }
    };
    if Role::parse(&form.role).is_none() {
        let errors = FieldErrors {
            role: Some("Choose one of the listed roles.".into()),
            ..FieldErrors::default()
        };
        return invalid(form, errors).await;
    }
    let password = if form.password.is_empty() {
        Value::Null
    } else {
        json!(form.password)
    };
    let request = match body(json!({
        "name": form.name.trim(),
        "email": form.email.trim(),
        "role": form.role,
        "password": password,
    })) {
        Ok(b) => b,
        Err(e) => return invalid(form, FieldErrors::from_api(&e.message)).await,
    };
    match api::create(State(Arc::clone(&app)), caller, ApiJson(request)).await {
        Ok((_, Json(created))) => {
            let how = if created.has_password {
                "They can sign in to this console with their email and the password you chose; share it with them privately."
            } else {
                "They have no console password: they can use API tokens an owner creates for them."
            };
            back(
                "/users",
                "ok",
                &format!(
                    "{} ({}) added as {}. {how}",
                    created.name,
                    created.email,
                    article(created.role.as_str())
                ),
            )
        }
        Err(e) => invalid(form, FieldErrors::from_api(&e.message)).await,
    }
}

fn article(role: &str) -> String {
    match role {
        "owner" => "an owner".to_owned(),
        other => format!("a {other}"),
    }
}

// ---- One user ---------------------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "console/users_detail.html")]
struct DetailPage {
    shell: Shell,
    subject: UserRow,
    roles: &'static [(&'static str, &'static str, &'static str)],
    may_change: Result<(), &'static str>,
    may_delete: Result<(), &'static str>,
    password_error: Option<String>,
    tokens: TokensSection,
}

impl DetailPage {
    fn locked(&self) -> bool {
        self.may_change.is_err()
    }
}

async fn subject(app: &Arc<App>, user: &ConsoleUser, id: &str) -> Result<UserRow, ApiError> {
    api::get(State(Arc::clone(app)), Path(id.to_owned()))
        .await
        .map(|Json(view)| UserRow::of(view, user))
}

async fn detail_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    subject: UserRow,
    password_error: Option<String>,
    tokens: Option<TokensSection>,
    flash: Flash,
) -> Response {
    let tokens = match tokens {
        Some(t) => t,
        None => TokensSection::load(app, user, &subject, "user").await,
    };
    let status = if password_error.is_some() || tokens.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = render(&DetailPage {
        shell: Shell::new(user, "users", format!("User “{}”", subject.name))
            .with_flash(flash.ok, flash.error),
        subject,
        roles: ROLES,
        may_change: user.may(Method::PATCH, USER),
        may_delete: user.may(Method::DELETE, USER),
        password_error,
        tokens,
    });
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

async fn detail(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    match subject(&app, &user, &id).await {
        Ok(subject) => detail_page(&app, &user, subject, None, None, flash).await,
        Err(e) => failed("/users", &e),
    }
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    from: String,
}

async fn set_role(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::PATCH, USER) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = page_path(&form.from, &id);
    if Role::parse(&form.role).is_none() {
        return back(&here, "error", "Choose one of the listed roles.");
    }
    let request = match body(json!({"role": form.role})) {
        Ok(b) => b,
        Err(e) => return failed(&here, &e),
    };
    match api::patch(State(app), caller, Path(id), ApiJson(request)).await {
        Ok(Json(after)) => back(
            &here,
            "ok",
            &format!(
                "{} is now {}. This applies to their next request.",
                after.name,
                article(after.role.as_str())
            ),
        ),
        Err(e) => back(&here, "error", &message(e.message)),
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

async fn set_password(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::PATCH, USER) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = format!("/users/{id}");
    let subject = match subject(&app, &user, &id).await {
        Ok(s) => s,
        Err(e) => return failed("/users", &e),
    };
    let request = match body(json!({"password": form.password})) {
        Ok(b) => b,
        Err(e) => return failed(&here, &e),
    };
    match api::patch(State(Arc::clone(&app)), caller, Path(id), ApiJson(request)).await {
        Ok(Json(after)) => back(
            &here,
            "ok",
            &format!(
                "New password set for {}. Their other sessions stay signed in until they expire.",
                after.name
            ),
        ),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            detail_page(
                &app,
                &user,
                subject,
                Some(message(e.message)),
                None,
                no_flash(),
            )
            .await
        }
        Err(e) => failed(&here, &e),
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    confirm_email: String,
    #[serde(default)]
    from: String,
}

async fn delete(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, USER) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = page_path(&form.from, &id);
    match subject(&app, &user, &id).await {
        Ok(s) if s.email == form.confirm_email.trim() => {}
        Ok(_) => {
            return back(
                &here,
                "error",
                "To remove a user, type their email exactly as shown.",
            );
        }
        Err(e) => return failed("/users", &e),
    }
    match api::delete(State(app), caller, Path(id)).await {
        Ok(_) => back(
            "/users",
            "ok",
            &format!(
                "{} removed. Their API tokens and console sessions no longer work.",
                form.confirm_email.trim()
            ),
        ),
        Err(e) => back(&here, "error", &message(e.message)),
    }
}

// ---- Tokens -----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct TokenForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    from: String,
}

/// The page a token form came from, with the tokens section given.
async fn token_page(
    app: &Arc<App>,
    user: &ConsoleUser,
    subject: UserRow,
    from: &str,
    tokens: impl FnOnce(TokensSection) -> TokensSection,
) -> Response {
    if from == "list" && subject.me {
        let section = tokens(TokensSection::load(app, user, &subject, "list").await);
        list_page(
            app,
            user,
            UserForm::default(),
            FieldErrors::default(),
            Some(section),
            no_flash(),
        )
        .await
    } else {
        let section = tokens(TokensSection::load(app, user, &subject, "user").await);
        detail_page(app, user, subject, None, Some(section), no_flash()).await
    }
}

async fn create_token(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::POST, TOKENS) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let subject = match subject(&app, &user, &id).await {
        Ok(s) => s,
        Err(e) => return failed("/users", &e),
    };
    let name = form.name.trim().to_owned();
    let result = match body(json!({"name": name})) {
        Ok(request) => {
            api::create_token(State(Arc::clone(&app)), caller, Path(id), ApiJson(request))
                .await
                .map(|(_, Json(t))| t)
        }
        Err(e) => Err(e),
    };
    match result {
        // The answer page is the only place the secret is ever shown.
        Ok(created) => {
            token_page(&app, &user, subject, &form.from, |section| TokensSection {
                created: Some(created),
                ..section
            })
            .await
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            token_page(&app, &user, subject, &form.from, |section| TokensSection {
                name: form.name.clone(),
                error: Some(message(e.message)),
                ..section
            })
            .await
        }
        Err(e) => failed(&page_path(&form.from, &subject.id), &e),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    from: String,
}

async fn revoke_token(
    State(app): State<Arc<App>>,
    user: ConsoleUser,
    Path((id, token_id)): Path<(String, String)>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let caller = match user.guard(&form.csrf, Method::DELETE, TOKEN) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let here = page_path(&form.from, &id);
    match api::revoke_token(State(app), caller, Path((id, token_id))).await {
        Ok(Json(token)) => back(
            &here,
            "ok",
            &format!(
                "Token “{}” revoked: requests with it are refused from now on.",
                token.name
            ),
        ),
        Err(e) => failed(&here, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_find_their_field() {
        let cases = [
            ("\"bob\" is not an email address", "email"),
            ("a user with this email already exists", "email"),
            ("password must be 10 to 1024 characters long", "password"),
            ("user name must be 1 to 100 characters long", "name"),
            ("unknown variant `boss`, expected one of `viewer`", "role"),
            ("something else", "form"),
        ];
        for (text, field) in cases {
            let e = FieldErrors::from_api(text);
            let placed = [
                ("name", &e.name),
                ("email", &e.email),
                ("role", &e.role),
                ("password", &e.password),
                ("form", &e.form),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .collect::<Vec<_>>();
            assert_eq!(placed, [field], "{text}");
        }
        assert_eq!(
            FieldErrors::from_api("user name must be 1 to 100 characters long").name,
            Some("User name must be 1 to 100 characters long.".into())
        );
    }

    #[test]
    fn token_forms_come_back_to_their_page() {
        assert_eq!(page_path("list", "usr_1"), "/users");
        assert_eq!(page_path("user", "usr_1"), "/users/usr_1");
        assert_eq!(page_path("https://evil.example", "usr_1"), "/users/usr_1");
    }
}
