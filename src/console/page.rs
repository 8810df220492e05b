//! What every console page shares: the shell (navigation, the signed-in user, the CSRF token,
//! a flash message) and rendering.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::auth::ConsoleUser;

/// The frame around every page.
pub struct Shell {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    /// Which navigation entry is current.
    pub active: &'static str,
    /// A message after an action: `(kind, text)`, kind `ok` or `error`.
    pub flash: Option<(&'static str, String)>,
    pub title: String,
}

/// The navigation, in order: `(key, label, path)`.
pub const NAV: &[(&str, &str, &str)] = &[
    ("consent", "Consent", "/consent"),
    ("sources", "Sources", "/sources"),
    ("destinations", "Destinations", "/destinations"),
    ("overview", "Delivery overview", "/overview"),
    ("debugger", "Debugger", "/debugger"),
    ("profiles", "Profiles", "/profiles"),
    ("regulations", "Regulations", "/regulations"),
    ("audit", "Audit trail", "/audit"),
    ("retl", "Reverse ETL", "/retl"),
    ("users", "Users and tokens", "/users"),
];

impl Shell {
    pub fn new(user: &ConsoleUser, active: &'static str, title: impl Into<String>) -> Shell {
        Shell {
            email: user.user.email.clone(),
            role: user.user.role.as_str(),
            csrf: user.csrf.clone(),
            active,
            flash: None,
            title: title.into(),
        }
    }

    /// Show `?ok=` / `?error=` messages passed along a redirect after a form.
    pub fn with_flash(mut self, ok: Option<String>, error: Option<String>) -> Shell {
        self.flash = error.map(|e| ("error", e)).or(ok.map(|m| ("ok", m)));
        self
    }

    pub fn nav(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        NAV
    }
}

/// Render a template as an HTML response.
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "Console template failed.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page could not be shown; see the server log.",
            )
                .into_response()
        }
    }
}

/// Redirect after a form, with a flash message in the query string.
pub fn back(path: &str, kind: &str, message: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    axum::response::Redirect::to(&format!(
        "{path}{sep}{kind}={}",
        super::auth::urlencode(&sentence(message))
    ))
    .into_response()
}

/// An API message as a sentence on a page: first letter upper case.
pub fn sentence(message: impl Into<String>) -> String {
    let message = message.into();
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => message,
    }
}

/// A form with nothing but the CSRF token (enable, disable, test, sync, …).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf", default)]
    pub csrf: String,
}

/// A delete (or disable) form: the CSRF token and the name typed to confirm.
#[derive(serde::Deserialize)]
pub struct ConfirmByName {
    #[serde(rename = "_csrf", default)]
    pub csrf: String,
    #[serde(default)]
    pub confirm_name: String,
}

/// Let a deletion through only when the typed name is exactly the thing's name; otherwise
/// back to `here` with "To delete a {what}, type its name exactly as shown."
#[allow(clippy::result_large_err)] // the error is the response to send
pub fn confirmed(typed: &str, name: &str, here: &str, what: &str) -> Result<(), Response> {
    if typed == name {
        Ok(())
    } else {
        Err(back(
            here,
            "error",
            &format!("To delete a {what}, type its name exactly as shown."),
        ))
    }
}
