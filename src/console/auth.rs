//! Console sign-in: sessions in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the
//! public URL is https), a CSRF token checked on every form, and the same role rules as the API.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::render;
use crate::app::App;
use crate::store::{Role, Session, User};

pub const COOKIE_NAME: &str = "sluice_session";
/// Sessions end 12 hours after sign-in.
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// The signed-in user of a console request. Requests without a session are sent to the
/// sign-in page.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub user: User,
    pub csrf: String,
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() < 200)
}

/// Where to go after signing in, kept to local console paths.
fn local_path(path: &str) -> String {
    if path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains("://")
        && !path.contains('\\')
    {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

pub struct NotSignedIn(String);

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        let next = urlencode(&self.0);
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<Arc<App>> for ConsoleUser {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let Some(secret) = session_cookie(&parts.headers) else {
            return Err(NotSignedIn(here));
        };
        match app.store.session(&secret).await {
            Ok(Some(Session { user, csrf, .. })) => Ok(ConsoleUser { user, csrf }),
            _ => Err(NotSignedIn(here)),
        }
    }
}

impl ConsoleUser {
    /// Whether this user may do what the admin API route allows; `Err` holds the reason
    /// shown next to disabled controls. The API's access table is the one source of truth.
    pub fn may(&self, method: Method, api_path: &str) -> Result<(), &'static str> {
        let rule = crate::admin::ACCESS
            .iter()
            .chain(crate::admin::RETL_ACCESS.iter())
            .find(|(m, p, _, _)| *m == method && *p == api_path);
        match rule {
            Some((_, _, least, _)) if self.user.role >= *least => Ok(()),
            Some((_, _, _, reason)) => Err(reason),
            None => Err("This action is not available"),
        }
    }

    pub fn is(&self, role: Role) -> bool {
        self.user.role >= role
    }

    pub fn actor(&self) -> crate::store::Actor {
        crate::store::Actor {
            id: self.user.id.clone(),
            label: self.user.email.clone(),
        }
    }

    /// Refuse a form whose CSRF token does not match the session's.
    // The error is the response to send; boxing it would only add an allocation per refusal.
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, token: &str) -> Result<(), Response> {
        use subtle::ConstantTimeEq;
        if bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err((StatusCode::FORBIDDEN, "This form has expired or did not come from this console; reload the page and try again.")
                .into_response())
        }
    }

    /// A 403 page for a forged or unauthorised action.
    pub fn refuse(&self, reason: &str) -> Response {
        (
            StatusCode::FORBIDDEN,
            format!(
                "{reason} (you are signed in as {}, a {}).",
                self.user.email,
                self.user.role.as_str()
            ),
        )
            .into_response()
    }
}

#[derive(askama::Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(Query(q): Query<NextQuery>) -> Response {
    render(&LoginPage {
        next: local_path(q.next.as_deref().unwrap_or("/")),
        email: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

fn cookie(app: &App, value: &str, max_age: i64) -> HeaderValue {
    let secure = if app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub async fn login(State(app): State<Arc<App>>, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(&form.next);
    let failed = |email: String| {
        let mut response = render(&LoginPage {
            next: next.clone(),
            email,
            error: Some("Email or password is not right.".into()),
        });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
    };
    if form.email.len() > 254 || form.password.len() > 1024 {
        return failed(String::new());
    }
    let Ok(Some((user, hash))) = app.store.password_hash(&form.email).await else {
        // Spend about as long as a real check, so timing does not reveal who has an account.
        let _ = verify(form.password, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0000000000000000000000000000000000000000000".into()).await;
        return failed(form.email);
    };
    if !verify(form.password, hash).await {
        return failed(form.email);
    }
    let Ok(secret) = app.store.create_session(&user.id, SESSION_MS).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not start a session; see the server log.",
        )
            .into_response();
    };
    let mut response = Redirect::to(&next).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie(&app, &secret, SESSION_MS / 1000));
    response
}

async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    user: ConsoleUser,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused;
    }
    if let Some(secret) = session_cookie(&headers) {
        let _ = app.store.end_session(&secret).await;
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie(&app, "", 0));
    response
}
