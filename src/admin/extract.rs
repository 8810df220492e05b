//! Request extractors for the admin API: the authenticated caller and JSON bodies whose
//! errors come back as `{"code", "message"}`.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::ApiError;
use crate::store::{Actor, Token, User};

/// The authenticated caller of an admin route.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token: Option<Token>,
}

impl Caller {
    pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "send an API token as `Authorization: Bearer <token>`; the owner token was printed on first start",
            )
        })?;
        let value = value.to_str().map_err(|_| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header is not valid text",
            )
        })?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_token",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        match app.store.authenticate_token(secret).await? {
            Some((user, token)) => Ok(Caller {
                user,
                token: Some(token),
            }),
            None => Err(ApiError::unauthorized(
                "invalid_token",
                "this token is unknown or revoked; create a new one with POST /api/v1/users/{id}/tokens",
            )),
        }
    }

    /// The caller as recorded in the audit trail.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.user.id.clone(),
            label: self.user.email.clone(),
        }
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal("caller missing: route not behind the authorize middleware")
        })
    }
}

/// `axum::Json`, with errors in the API's format and messages that name the bad field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(body).map(ApiJson).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("invalid request body: {e}"))
        })
    }
}

/// Deserialize a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// Format Unix ms for JSON answers.
pub fn ts(ms: i64) -> String {
    crate::clock::format_ms(ms)
}
